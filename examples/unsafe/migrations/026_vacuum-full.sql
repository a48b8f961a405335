VACUUM FULL messages;
