-- Each device's readings in one silver hour, summed up for its daily health (device_health.sql):
-- counts and sums that add up over a day, the first and last reading time, the type and location
-- of the newest reading, and how often each time between its readings occurred (`gaps`), from
-- which a day's median cadence is exact.
--
-- Inputs: silver_readings (one hour).
WITH
times AS (
    SELECT DISTINCT device_id, ts FROM silver_readings
),
gaps AS (
    SELECT device_id, list({'gap_s': gap_s, 'n': n} ORDER BY gap_s) AS gaps
    FROM (
        SELECT device_id, gap_s, count(*) AS n
        FROM (SELECT device_id, epoch(ts - lag(ts) OVER (PARTITION BY device_id ORDER BY ts)) AS gap_s FROM times)
        WHERE gap_s > 0
        GROUP BY ALL
    )
    GROUP BY device_id
),
readings AS (
    SELECT device_id,
           count(*) AS readings,
           sum(quality_score) AS quality_sum,
           count(*) FILTER (WHERE is_valid) AS valid_readings,
           count(*) FILTER (WHERE is_late_event) AS late_readings,
           sum(copies - 1)::BIGINT AS duplicates,
           count(DISTINCT ts) AS received,
           min(ts) AS first_ts,
           max(ts) AS last_ts,
           arg_max(device_type, ts) AS device_type,
           arg_max(location, ts) AS location
    FROM silver_readings
    GROUP BY device_id
)
SELECT r.*, coalesce(g.gaps, []::STRUCT(gap_s DOUBLE, n BIGINT)[]) AS gaps
FROM readings r
LEFT JOIN gaps g USING (device_id)
