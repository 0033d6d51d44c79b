-- Each device's type and location for the gold tables: those of its newest reading in scope.
--
-- Inputs: silver_readings.
SELECT device_id, arg_max(device_type, ts) AS device_type, arg_max(location, ts) AS location
FROM silver_readings
GROUP BY device_id
