-- Positions of the collector's registry sink in its journal, committed in the same transaction
-- as the writes they cover (exactly-once into PostgreSQL). Keyed by journal id and sink name.
CREATE TABLE collector_cursors (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
