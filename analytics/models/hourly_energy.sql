-- Each device channel's energy sources in one silver hour, summed up so that a day's energy is
-- the sum of its hours and of the spans between them (gold_energy_channel.sql): the first and
-- the last valid reading of each source, and the energy of the spans between its readings
-- within the hour, by the rules of gold_energy_channel.sql. Only valid readings count.
--
-- Inputs: silver_readings (one hour), energy_sources; variable max_gap_s.
WITH
sources AS (
    SELECT s.device_id, s.channel, e.kind, e.preference, s.ts, s.value * e.factor AS v
    FROM silver_readings s
    JOIN energy_sources e ON e.base_metric = s.base_metric AND e.unit = coalesce(s.unit, '')
    WHERE s.is_valid
),
steps AS (
    SELECT *,
           lag(ts) OVER series AS prev_ts,
           lag(v) OVER series AS prev_v
    FROM sources
    WINDOW series AS (PARTITION BY device_id, channel, kind ORDER BY ts)
)
SELECT device_id, channel, kind,
       min(preference) AS preference,
       min(ts) AS first_ts,
       arg_min(v, ts) AS first_v,
       max(ts) AS last_ts,
       arg_max(v, ts) AS last_v,
       -- The spans (prev_ts, ts] within the hour; an interval reading is its own.
       coalesce(sum(CASE
           WHEN kind = 'interval' THEN v
           WHEN prev_ts IS NULL THEN NULL
           WHEN kind = 'counter' THEN CASE WHEN v >= prev_v THEN v - prev_v ELSE v END
           WHEN epoch(ts - prev_ts) <= getvariable('max_gap_s') THEN (v + prev_v) / 2 * epoch(ts - prev_ts) / 3600
           ELSE 0
       END), 0) AS wh,
       count(*) FILTER (WHERE kind = 'interval' OR prev_ts IS NOT NULL) AS spans
FROM steps
GROUP BY device_id, channel, kind
