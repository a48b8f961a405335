REINDEX TABLE messages;
