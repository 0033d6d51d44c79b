-- Refresh tokens (POST /api/auth/refresh): only their SHA-256 is kept. Each login starts a
-- family; each refresh uses one token up and issues the next of the family. A token presented
-- again after it was used means it was stolen or replayed: the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash        BYTEA PRIMARY KEY,
    family            UUID NOT NULL,
    username          TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE ON UPDATE CASCADE,
    -- When the family's login happened: refused once the user's role or password changes after it.
    family_started_at TIMESTAMPTZ NOT NULL,
    issued_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at        TIMESTAMPTZ NOT NULL,
    used_at           TIMESTAMPTZ,
    revoked_at        TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
