-- API keys limited to one workspace (NULL: every workspace, as keys made before), and keys that
-- expire (NULL: never).
ALTER TABLE api_keys ADD COLUMN workspace TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
