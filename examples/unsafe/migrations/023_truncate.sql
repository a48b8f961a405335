TRUNCATE messages;
