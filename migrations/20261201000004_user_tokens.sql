-- Tokens issued before this moment are refused: set when a user's role or password changes (and
-- at creation, so that a user deleted and created again does not inherit old tokens).
ALTER TABLE users ADD COLUMN tokens_valid_since TIMESTAMPTZ NOT NULL DEFAULT now();
UPDATE users SET tokens_valid_since = created_at;
