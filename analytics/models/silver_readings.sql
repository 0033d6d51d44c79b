-- Silver: the validated, deduplicated and enriched readings. One row per device, metric and
-- device timestamp, whatever the replays, broker duplicates or re-runs.
--
-- Inputs (see analytics/README.md): bronze_readings, registry_devices, device_metadata,
-- validity_ranges, energy_sources; variables from_ts and to_ts (the hours being built),
-- late_after_s. All times are UTC TIMESTAMPs.
WITH
-- The hours being built, and the hour before them for the rolling averages.
scope AS (
    SELECT * FROM bronze_readings
    WHERE ts >= getvariable('from_ts') - INTERVAL 1 HOUR AND ts < getvariable('to_ts')
),
-- Each device's metric as one integer: the window functions below sort by it, not by two strings.
series AS MATERIALIZED (
    SELECT row_number() OVER ()::INTEGER AS series_id,
           dense_rank() OVER (ORDER BY device_id)::INTEGER AS device_no,
           device_id, metric,
           CASE WHEN contains(metric, '.') THEN split_part(metric, '.', 1) ELSE '' END AS channel,
           CASE WHEN contains(metric, '.') THEN metric[strpos(metric, '.') + 1:] ELSE metric END AS base_metric
    FROM (SELECT DISTINCT device_id, metric FROM scope)
),
-- Every copy of a reading (a broker duplicate, a replay, a second collector) counts once: the
-- first received is kept, and how many arrived is recorded.
copies AS (
    SELECT s.series_id, s.device_no, r.ts, r.value, r.unit, r.device_type, r.seq, r.received_at, r.journal_no,
           count(*) OVER (PARTITION BY s.series_id ORDER BY r.ts
                          RANGE BETWEEN CURRENT ROW AND CURRENT ROW) AS copies,
           lag(r.ts) OVER (PARTITION BY s.series_id ORDER BY r.ts, r.received_at, r.journal_no) AS previous_ts
    FROM scope r
    JOIN series s USING (device_id, metric)
),
unique_readings AS MATERIALIZED (
    SELECT * EXCLUDE (previous_ts) FROM copies WHERE previous_ts IS DISTINCT FROM ts
),
-- The registry's device, completed from the metadata file through its MAC address (the type:
-- the registry's, else the one the reading came with, else the metadata file's); seed 002's
-- quality rule takes 0.1 off for each of location, manufacturer and model a device lacks.
devices AS (
    SELECT r.device_id,
           r.device_type AS registry_type,
           m.device_type AS metadata_type,
           coalesce(r.location, m.location) AS location,
           coalesce(r.owner, m.owner) AS owner,
           r.installed_on,
           0.1 * ((coalesce(r.location, m.location) IS NULL)::INTEGER
                  + (r.manufacturer IS NULL)::INTEGER + (r.model IS NULL)::INTEGER)::DOUBLE AS missing_info_penalty
    FROM registry_devices r
    LEFT JOIN device_metadata m ON m.mac = r.mac
),
-- Seed 002's quality rule, part 2: a record (one device timestamp: seed 002's one message) loses
-- 0.2 for a temperature outside 0..50 °C and 0.2 for power above 5,000 W.
records AS (
    SELECT u.device_no, u.ts,
           bool_or(s.base_metric = 'temperature' AND (u.value < 0 OR u.value > 50)) AS odd_temperature,
           bool_or(coalesce(u.value * e.factor > 5000, false)) AS high_power
    FROM unique_readings u
    JOIN series s USING (series_id)
    LEFT JOIN energy_sources e
        ON e.base_metric = s.base_metric AND e.unit = coalesce(u.unit, '') AND e.kind = 'power'
    GROUP BY ALL
),
validated AS (
    SELECT u.* EXCLUDE (device_no), s.device_id, s.metric, s.channel, s.base_metric,
           coalesce(d.registry_type, u.device_type, d.metadata_type, 'unknown') AS type,
           coalesce(d.location, 'unknown') AS location,
           d.owner,
           date_diff('day', d.installed_on, CAST(u.ts AS DATE)) AS device_age_days,
           -- Rounded: 1 − 0.3 − 0.2 is 0.49999999999999994 in binary, and seed 002 says 0.5 is valid.
           round(greatest(0.0, 1.0 - coalesce(d.missing_info_penalty, 0.3)
                          - 0.2 * r.odd_temperature::INTEGER - 0.2 * r.high_power::INTEGER), 6) AS quality_score,
           isfinite(u.value)
               AND (v.min_value IS NULL OR u.value >= v.min_value)
               AND (v.max_value IS NULL OR u.value <= v.max_value) AS in_range
    FROM unique_readings u
    JOIN series s USING (series_id)
    JOIN records r ON r.device_no = u.device_no AND r.ts = u.ts
    LEFT JOIN devices d ON d.device_id = s.device_id
    LEFT JOIN validity_ranges v ON v.base_metric = s.base_metric
)
SELECT CAST(ts AS DATE) AS date,
       hour(ts) AS hour,
       ts,
       device_id,
       type AS device_type,
       location,
       owner,
       metric,
       channel,
       base_metric,
       value,
       unit,
       seq,
       received_at,
       journal_no,
       copies,
       epoch(received_at - ts) AS processing_delay_s,
       epoch(received_at - ts) > getvariable('late_after_s') AS is_late_event,
       in_range,
       quality_score,
       in_range AND quality_score >= 0.5 AS is_valid,
       device_age_days,
       -- The mean of the device's valid readings of this metric in the hour up to this one (true
       -- time, not a number of rows).
       avg(CASE WHEN in_range AND quality_score >= 0.5 THEN value END) OVER (
           PARTITION BY series_id ORDER BY ts
           RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW) AS avg_1h
FROM validated
QUALIFY ts >= getvariable('from_ts')
