-- Silver: the validated, deduplicated and enriched readings of one hour. One row per device,
-- metric and device timestamp, whatever the replays, broker duplicates or re-runs.
--
-- Inputs (see analytics/README.md): bronze_readings (the bronze files with readings in the hour),
-- silver_before (the hour before's silver, for the rolling averages), registry_devices,
-- device_metadata, validity_ranges, energy_sources; variables from_ts and to_ts (the hour),
-- late_after_s. All times are UTC TIMESTAMPs.
WITH
scope AS (
    SELECT * FROM bronze_readings
    WHERE ts >= getvariable('from_ts') AND ts < getvariable('to_ts')
),
-- Every copy of a reading (a broker duplicate, a replay, a second collector) counts once: the
-- first received is kept (`arrival` orders copies by reception, then journal number), and how
-- many arrived is recorded.
unique_readings AS MATERIALIZED (
    SELECT device_id, metric, ts,
           arg_min(value, arrival) AS value,
           arg_min(unit, arrival) AS unit,
           arg_min(device_type, arrival) AS device_type,
           arg_min(seq, arrival) AS seq,
           min(received_at) AS received_at,
           arg_min(journal_no, arrival) AS journal_no,
           count(*) AS copies
    FROM (SELECT *, (epoch_us(received_at)::HUGEINT << 64) + journal_no AS arrival FROM scope)
    GROUP BY device_id, metric, ts
),
-- Each device's metric as one integer: the window below sorts by it, not by two strings.
series AS MATERIALIZED (
    SELECT row_number() OVER ()::INTEGER AS series_id,
           dense_rank() OVER (ORDER BY device_id)::INTEGER AS device_no,
           device_id, metric,
           CASE WHEN contains(metric, '.') THEN split_part(metric, '.', 1) ELSE '' END AS channel,
           CASE WHEN contains(metric, '.') THEN metric[strpos(metric, '.') + 1:] ELSE metric END AS base_metric
    FROM (SELECT DISTINCT device_id, metric FROM unique_readings)
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
keyed AS MATERIALIZED (
    SELECT s.series_id, s.device_no, u.ts, u.value, u.unit, u.device_type, u.seq, u.received_at,
           u.journal_no, u.copies,
           s.base_metric = 'temperature' AND (u.value < 0 OR u.value > 50) AS odd_temperature,
           coalesce(u.value * e.factor > 5000, false) AS high_power
    FROM unique_readings u
    JOIN series s USING (device_id, metric)
    LEFT JOIN energy_sources e
        ON e.base_metric = s.base_metric AND e.unit = coalesce(u.unit, '') AND e.kind = 'power'
),
records AS (
    SELECT device_no, ts, bool_or(odd_temperature) AS odd_temperature, bool_or(high_power) AS high_power
    FROM keyed
    GROUP BY ALL
),
validated AS (
    SELECT k.series_id, k.ts, k.value, k.unit, k.seq, k.received_at, k.journal_no, k.copies,
           s.device_id, s.metric, s.channel, s.base_metric,
           coalesce(d.registry_type, k.device_type, d.metadata_type, 'unknown') AS type,
           coalesce(d.location, 'unknown') AS location,
           d.owner,
           date_diff('day', d.installed_on, CAST(k.ts AS DATE)) AS device_age_days,
           -- Rounded: 1 − 0.3 − 0.2 is 0.49999999999999994 in binary, and seed 002 says 0.5 is valid.
           round(greatest(0.0, 1.0 - coalesce(d.missing_info_penalty, 0.3)
                          - 0.2 * r.odd_temperature::INTEGER - 0.2 * r.high_power::INTEGER), 6) AS quality_score,
           isfinite(k.value)
               AND (v.min_value IS NULL OR k.value >= v.min_value)
               AND (v.max_value IS NULL OR k.value <= v.max_value) AS in_range,
           true AS in_hour
    FROM keyed k
    JOIN series s USING (series_id)
    JOIN records r ON r.device_no = k.device_no AND r.ts = k.ts
    LEFT JOIN devices d ON d.device_id = s.device_id
    LEFT JOIN validity_ranges v ON v.base_metric = s.base_metric
),
-- The hour before, as its silver says (valid or not), for the rolling averages.
look_back AS (
    SELECT s.series_id, b.ts, b.value, b.is_valid AS in_range, 1.0 AS quality_score, false AS in_hour
    FROM silver_before b
    JOIN series s USING (device_id, metric)
    WHERE b.ts >= getvariable('from_ts') - INTERVAL 1 HOUR AND b.ts < getvariable('from_ts')
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
FROM (SELECT * FROM validated UNION ALL BY NAME SELECT * FROM look_back)
QUALIFY in_hour
