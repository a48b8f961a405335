CLUSTER messages USING messages_pkey;
