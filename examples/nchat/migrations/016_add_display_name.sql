-- Multi-phase rename full_name -> display_name, phase 1: add the new column.
-- (Phase 2, dual writes, is an application deploy.)
ALTER TABLE nchat.nchat_users ADD COLUMN display_name TEXT NULL;
