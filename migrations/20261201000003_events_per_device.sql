-- A qs/v1 event is identified by its device and its event_id: one device can no longer claim an
-- event id (and so have another device's event answered "duplicate" and never stored).
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (device_id, event_id);
