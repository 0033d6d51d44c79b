-- The whole device registry: devices, configs, alerts, commands, sequence tracking, the seed 003
-- events table and users. Later features add columns, not tables, where they can.

CREATE TABLE devices (
    id                BIGSERIAL PRIMARY KEY,
    device_id         TEXT NOT NULL UNIQUE,
    device_name       TEXT NOT NULL,
    device_type       TEXT,
    location          TEXT,
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'inactive', 'maintenance', 'unregistered', 'decommissioned')),
    connection_status TEXT NOT NULL DEFAULT 'unknown'
                      CHECK (connection_status IN ('online', 'offline', 'unknown')),
    last_seen         TIMESTAMPTZ,
    fw_version        TEXT,
    metadata          JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- "Newest first" listings page through this index.
CREATE INDEX devices_created_idx ON devices (created_at DESC, id DESC);
CREATE INDEX devices_status_idx ON devices (status);
CREATE INDEX devices_type_idx ON devices (device_type);
CREATE INDEX devices_connection_idx ON devices (connection_status);

CREATE TABLE device_configs (
    device_id    TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    config_key   TEXT NOT NULL,
    config_value JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, config_key)
);

CREATE TABLE alerts (
    id              BIGSERIAL PRIMARY KEY,
    device_id       TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    alert_type      TEXT NOT NULL,
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    message         TEXT NOT NULL DEFAULT '',
    acknowledged    BOOLEAN NOT NULL DEFAULT false,
    acknowledged_by TEXT,
    acknowledged_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX alerts_device_idx ON alerts (device_id, created_at DESC);
CREATE INDEX alerts_created_idx ON alerts (created_at DESC);
CREATE INDEX alerts_open_idx ON alerts (created_at DESC) WHERE NOT acknowledged;

-- Commands sent to devices over MQTT and what the device answered.
CREATE TABLE commands (
    cmd_id       UUID PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    cmd          TEXT NOT NULL,
    params       JSONB NOT NULL DEFAULT '{}'::jsonb,
    status       TEXT NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'sent', 'accepted', 'rejected', 'error', 'unsupported')),
    detail       TEXT,
    ota_state    TEXT,
    ota_progress SMALLINT,
    requested_by TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at      TIMESTAMPTZ,
    acked_at     TIMESTAMPTZ
);
CREATE INDEX commands_device_idx ON commands (device_id, created_at DESC);
CREATE INDEX commands_queued_idx ON commands (created_at) WHERE status = 'queued';

-- The last v2 `seq` seen per device, for duplicate drop and gap alerts.
CREATE TABLE device_sequences (
    device_id  TEXT PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    last_seq   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Seed 003 events, stored idempotently on event_id. Kept as an append-only log: no foreign key,
-- so history survives a device's deletion and events from not-yet-registered devices fit.
CREATE TABLE events (
    event_id   TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    schema     INT NOT NULL,
    event_type TEXT NOT NULL,
    value_num  DOUBLE PRECISION,
    value_text TEXT,
    unit       TEXT,
    ts_device  TIMESTAMPTZ,
    ts_server  TIMESTAMPTZ NOT NULL DEFAULT now(),
    meta       JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX idx_events_ts_device ON events (ts_device);
CREATE INDEX idx_events_type_ts ON events (event_type, ts_device);
CREATE INDEX idx_events_device_ts ON events (device_id, ts_device);
CREATE INDEX idx_events_device_server ON events (device_id, ts_server DESC);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
