ALTER TABLE bookings ADD CONSTRAINT no_double_booking EXCLUDE USING gist (during WITH &&);
