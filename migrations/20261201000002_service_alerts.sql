-- Alerts about devicehub itself (its journal, its sinks) belong to no device.
ALTER TABLE alerts ALTER COLUMN device_id DROP NOT NULL;
