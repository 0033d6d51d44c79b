-- Gold: each device's health per day.
--
-- Inputs: silver_readings (the days being built and the day before), gold_device_dims,
-- registry_alerts_daily, quarantine_daily; variables days_from, days_to, data_until (the newest
-- device time in the lake, so that a re-run over the same data gives the same answer).
--
-- Seed 002's formula:
--   health_score        = 0.4 · mean quality_score + 0.3 · valid share + 0.2 · (1 − late share)
--                         + 0.1 · (1 − min(alerts / 10, 1))
-- devicehub's, from its own signals:
--   uptime_share        = the device's distinct reading times / those expected: the day's
--                         reporting window (from midnight, or from its first reading if it did
--                         not report the day before, to midnight or data_until) over its cadence
--                         (the median time between its readings that day) + 1; at most 1
--   failure_probability = 1 − health_score · uptime_share
--   data_reliability    = uptime_share · valid share · received / (received + sequence gaps
--                         + quarantined records)
WITH
per_reading AS (
    SELECT CAST(ts AS DATE) AS date, device_id, ts, quality_score, is_valid, is_late_event, copies
    FROM silver_readings
),
cadence AS (
    SELECT date, device_id, median(gap) AS cadence_s
    FROM (
        SELECT date, device_id,
               epoch(ts - lag(ts) OVER (PARTITION BY date, device_id ORDER BY ts)) AS gap
        FROM (SELECT DISTINCT date, device_id, ts FROM per_reading)
    )
    WHERE gap > 0
    GROUP BY ALL
),
daily AS (
    SELECT date, device_id,
           count(*) AS readings,
           avg(quality_score) AS avg_quality,
           avg(is_valid::INTEGER) AS valid_share,
           avg(is_late_event::INTEGER) AS late_share,
           sum(copies - 1)::BIGINT AS duplicates,
           count(*) FILTER (WHERE NOT is_valid) AS invalid_readings,
           count(*) FILTER (WHERE is_late_event) AS late_readings,
           count(DISTINCT ts) AS received,
           min(ts) AS first_ts,
           max(ts) AS last_ts
    FROM per_reading
    GROUP BY ALL
),
windowed AS (
    SELECT d.*,
           c.cadence_s,
           -- A device that reported the day before is expected from midnight on.
           CASE WHEN p.device_id IS NOT NULL THEN CAST(d.date AS TIMESTAMP) ELSE d.first_ts END AS window_start,
           greatest(d.last_ts, least(CAST(d.date AS TIMESTAMP) + INTERVAL 1 DAY, getvariable('data_until'))) AS window_end
    FROM daily d
    LEFT JOIN cadence c USING (date, device_id)
    LEFT JOIN (SELECT DISTINCT date + 1 AS date, device_id FROM daily) p USING (date, device_id)
    WHERE d.date BETWEEN getvariable('days_from') AND getvariable('days_to')
),
scored AS (
    SELECT w.*,
           coalesce(a.alerts, 0) AS alerts,
           coalesce(a.sequence_gaps, 0) AS sequence_gaps,
           coalesce(a.offline_events, 0) AS offline_events,
           coalesce(q.quarantined, 0) AS quarantined,
           CASE WHEN w.cadence_s IS NULL THEN 1.0
                ELSE least(1.0, w.received / (floor(epoch(w.window_end - w.window_start) / w.cadence_s) + 1))
           END AS uptime_share,
           0.4 * w.avg_quality + 0.3 * w.valid_share + 0.2 * (1 - w.late_share)
               + 0.1 * (1 - least(coalesce(a.alerts, 0) / 10, 1)) AS health_score
    FROM windowed w
    LEFT JOIN registry_alerts_daily a USING (date, device_id)
    LEFT JOIN quarantine_daily q USING (date, device_id)
)
SELECT s.date, s.device_id, dims.device_type, dims.location,
       round(s.health_score, 6) AS health_score,
       round(1 - s.health_score * s.uptime_share, 6) AS failure_probability,
       round(s.uptime_share * s.valid_share * s.received
             / (s.received + s.sequence_gaps + s.quarantined), 6) AS data_reliability,
       round(s.uptime_share, 6) AS uptime_share,
       round(s.avg_quality, 6) AS quality_score,
       round(s.valid_share, 6) AS valid_share,
       round(s.late_share, 6) AS late_share,
       s.readings, s.invalid_readings, s.late_readings, s.duplicates,
       s.alerts, s.sequence_gaps, s.offline_events, s.quarantined,
       s.cadence_s,
       s.first_ts::TIMESTAMPTZ AS first_reading,
       s.last_ts::TIMESTAMPTZ AS last_reading
FROM scored s
JOIN gold_device_dims dims USING (device_id)
