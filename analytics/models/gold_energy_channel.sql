-- Each device channel's energy per day, from the best source it reported that day:
--   counter   a cumulative counter (Shelly aenergy.total, a meter's energy): the increase between
--             consecutive readings; a decrease is a counter reset, after which the counter's value
--             is what was used since it restarted from zero;
--   interval  energy per reading interval (seed 002's energy_consumption_wh), on the reading's day;
--   power     power integrated over time (trapezoids between consecutive readings); a gap longer
--             than max_gap_s is not bridged.
-- Counter and power spans that cross midnight are split between the days in proportion to time.
-- Only valid readings count.
--
-- Inputs: silver_readings (the days being built and the day on each side), energy_sources;
-- variables days_from, days_to, max_gap_s.
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
),
-- The energy (Wh) of each span (start_ts, end_ts].
spans AS (
    SELECT device_id, channel, kind, preference,
           coalesce(prev_ts, ts) AS start_ts,
           ts AS end_ts,
           CASE kind
               WHEN 'interval' THEN v
               WHEN 'counter' THEN CASE WHEN v >= prev_v THEN v - prev_v ELSE v END
               ELSE CASE WHEN epoch(ts - prev_ts) <= getvariable('max_gap_s')
                         THEN (v + prev_v) / 2 * epoch(ts - prev_ts) / 3600 ELSE 0 END
           END AS wh
    FROM steps
    WHERE kind = 'interval' OR prev_ts IS NOT NULL
),
per_day AS (
    -- A reading's interval energy, and spans within one day: on the day they end in.
    SELECT device_id, channel, kind, preference,
           CASE WHEN kind = 'interval' THEN CAST(end_ts AS DATE)
                ELSE CAST(end_ts - INTERVAL 1 MICROSECOND AS DATE) END AS date,
           wh
    FROM spans
    WHERE kind = 'interval'
       OR CAST(start_ts AS DATE) = CAST(end_ts - INTERVAL 1 MICROSECOND AS DATE)
    UNION ALL
    -- Spans across midnight, split in proportion to time.
    SELECT device_id, channel, kind, preference, CAST(day AS DATE) AS date,
           wh * epoch(least(end_ts, day + INTERVAL 1 DAY) - greatest(start_ts, day))
              / epoch(end_ts - start_ts) AS wh
    FROM (
        SELECT *, unnest(generate_series(CAST(CAST(start_ts AS DATE) AS TIMESTAMP),
                                         end_ts - INTERVAL 1 MICROSECOND, INTERVAL 1 DAY)) AS day
        FROM spans
        WHERE kind <> 'interval'
          AND CAST(start_ts AS DATE) <> CAST(end_ts - INTERVAL 1 MICROSECOND AS DATE)
    )
),
by_kind AS (
    SELECT date, device_id, channel, kind, preference, sum(wh) AS wh, count(*) AS readings
    FROM per_day
    WHERE date BETWEEN getvariable('days_from') AND getvariable('days_to')
    GROUP BY ALL
)
SELECT date, device_id, channel, kind AS method, wh, readings
FROM by_kind
QUALIFY preference = min(preference) OVER (PARTITION BY date, device_id, channel)
