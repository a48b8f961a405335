ALTER TABLE users ADD COLUMN score int DEFAULT compute_initial_score();
