-- Each device's type and location for the gold tables: those of its newest reading in scope.
--
-- Inputs: device_hours.
SELECT device_id, arg_max(device_type, last_ts) AS device_type, arg_max(location, last_ts) AS location
FROM device_hours
GROUP BY device_id
