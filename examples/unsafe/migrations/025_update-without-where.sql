UPDATE users SET display_name = email;
