-- Live updates for the SSE stream (GET /api/stream): every change a browser watches is announced
-- on the channel `devicehub_live`, whichever process made it (collector, pollers, API), so that
-- every API process hears it. Payloads stay small (NOTIFY carries at most 8,000 bytes): alerts
-- and commands name their row, which the listener reads; a status change carries itself.

CREATE FUNCTION devicehub_live_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('devicehub_live', json_build_object('kind', 'alert', 'id', NEW.id)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER alerts_live AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION devicehub_live_alert();

CREATE FUNCTION devicehub_live_command() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('devicehub_live', json_build_object('kind', 'command', 'cmd_id', NEW.cmd_id)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER commands_live AFTER INSERT OR UPDATE OF status, detail, ota_state, ota_progress ON commands
    FOR EACH ROW EXECUTE FUNCTION devicehub_live_command();

CREATE FUNCTION devicehub_live_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('devicehub_live', json_build_object(
        'kind', 'status',
        'device_id', NEW.device_id,
        'connection_status', NEW.connection_status,
        'last_seen', NEW.last_seen)::text);
    RETURN NULL;
END $$;

-- Only a change of connection status: last_seen moves with every message.
CREATE TRIGGER devices_live AFTER UPDATE OF connection_status ON devices
    FOR EACH ROW WHEN (OLD.connection_status IS DISTINCT FROM NEW.connection_status)
    EXECUTE FUNCTION devicehub_live_status();
