-- Creates nothing new: reporting was created by 001_base.sql.
DROP SCHEMA reporting CASCADE;
