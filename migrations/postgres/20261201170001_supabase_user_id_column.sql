-- Supabase connections: the row column that holds the auth.users id (issue 17), so rows
-- without an email (a profiles table) resolve to the user's contact.
ALTER TABLE connections ADD COLUMN user_id_column TEXT;
