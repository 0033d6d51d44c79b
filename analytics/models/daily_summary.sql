-- Gold: seed 002's business summary per day — total energy and cost, active devices (those with
-- a valid reading), average health — and the day's data quality in numbers.
--
-- Inputs: energy_daily_device, device_health.
WITH
energy AS (
    SELECT date, round(sum(energy_kwh), 6) AS total_kwh, round(sum(cost), 6) AS total_cost
    FROM energy_daily_device
    GROUP BY date
),
health AS (
    SELECT date,
           count(*) FILTER (WHERE valid_share > 0) AS active_devices,
           count(*) AS reporting_devices,
           round(avg(health_score), 6) AS avg_health,
           sum(readings)::BIGINT AS readings,
           sum(invalid_readings)::BIGINT AS invalid_readings,
           sum(late_readings)::BIGINT AS late_readings,
           sum(duplicates)::BIGINT AS duplicates,
           sum(alerts)::BIGINT AS alerts
    FROM device_health
    GROUP BY date
)
SELECT h.date,
       coalesce(e.total_kwh, 0) AS total_kwh,
       coalesce(e.total_cost, 0) AS total_cost,
       h.active_devices, h.reporting_devices, h.avg_health, h.readings, h.invalid_readings,
       h.late_readings, h.duplicates, h.alerts
FROM health h
LEFT JOIN energy e USING (date)
