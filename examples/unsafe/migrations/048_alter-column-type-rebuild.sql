-- text to varchar keeps the rows, but the expression index on the column is built again.
ALTER TABLE bookings ADD COLUMN note text;
CREATE INDEX bookings_lower_note ON bookings (lower(note));
ALTER TABLE bookings ALTER COLUMN note TYPE varchar;
