-- Records a sink can never write (the store refuses them for good), kept with the reason so that
-- the sink can move on and an operator can see what was refused and why. Keyed by journal and
-- position: a replay after a crash quarantines a record once.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    journal_id  TEXT NOT NULL,
    journal_no  BIGINT NOT NULL,
    sink        TEXT NOT NULL,
    device_id   TEXT,
    topic       TEXT NOT NULL,
    -- As received: bytes, since what a store refused may be what PostgreSQL's text refuses too.
    payload     BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (journal_id, sink, journal_no)
);
CREATE INDEX idx_quarantine_created ON quarantine (created_at DESC, id DESC);
CREATE INDEX idx_quarantine_device ON quarantine (device_id, created_at DESC);
