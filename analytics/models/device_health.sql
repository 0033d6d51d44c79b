-- Gold: each device's health per day.
--
-- Inputs: device_hours (hourly_device.sql: the days being built and the day before), gold_device_dims,
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
hours AS (
    SELECT CAST(first_ts AS DATE) AS date, * FROM device_hours
),
-- The times between the device's readings of a day: within its hours, and from each hour's last
-- reading to the next hour's first.
gaps AS (
    SELECT date, device_id, g.gap_s, g.n
    FROM (SELECT date, device_id, unnest(gaps) AS g FROM hours)
    UNION ALL
    SELECT date, device_id, epoch(first_ts - lag(last_ts) OVER (PARTITION BY date, device_id ORDER BY first_ts)), 1
    FROM hours
),
-- The median time between readings (as DuckDB's median: the mean of the two middle ones when
-- their number is even), from how often each occurred.
ranked AS (
    SELECT date, device_id, gap_s,
           sum(n) OVER (PARTITION BY date, device_id ORDER BY gap_s) AS up_to,
           sum(n) OVER (PARTITION BY date, device_id) AS total
    FROM (SELECT date, device_id, gap_s, sum(n) AS n FROM gaps WHERE gap_s > 0 GROUP BY ALL)
),
cadence AS (
    SELECT date, device_id,
           lower_gap + (upper_gap - lower_gap) * 0.5 AS cadence_s
    FROM (
        SELECT date, device_id,
               min(gap_s) FILTER (WHERE up_to > floor((total - 1) / 2)) AS lower_gap,
               min(gap_s) FILTER (WHERE up_to > ceil((total - 1) / 2)) AS upper_gap
        FROM ranked
        GROUP BY ALL
    )
),
daily AS (
    SELECT date, device_id,
           sum(readings)::BIGINT AS readings,
           sum(quality_sum) / sum(readings) AS avg_quality,
           sum(valid_readings) / sum(readings) AS valid_share,
           sum(late_readings) / sum(readings) AS late_share,
           sum(duplicates)::BIGINT AS duplicates,
           (sum(readings) - sum(valid_readings))::BIGINT AS invalid_readings,
           sum(late_readings)::BIGINT AS late_readings,
           sum(received)::BIGINT AS received,
           min(first_ts) AS first_ts,
           max(last_ts) AS last_ts
    FROM hours
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
