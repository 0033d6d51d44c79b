-- Each device channel's energy per day, from the best source it reported that day:
--   counter   a cumulative counter (Shelly aenergy.total, a meter's energy): the increase between
--             consecutive readings; a decrease is a counter reset, after which the counter's value
--             is what was used since it restarted from zero;
--   interval  energy per reading interval (seed 002's energy_consumption_wh), on the reading's day;
--   power     power integrated over time (trapezoids between consecutive readings); a gap longer
--             than max_gap_s is not bridged.
-- Only valid readings count. The spans between readings of one hour are summed in energy_hours
-- (hourly_energy.sql); here they are added up per day with the spans from each hour's last reading
-- to the next reading, in a later hour. Spans that cross midnight (only those can) are split
-- between the days in proportion to time.
--
-- Inputs: energy_hours (the days being built and the day on each side); variables days_from,
-- days_to, max_gap_s.
WITH
-- The span from each hour's last reading to the first of the next hour with readings.
between_hours AS (
    SELECT device_id, channel, kind, preference,
           lag(last_ts) OVER series AS start_ts,
           lag(last_v) OVER series AS prev_v,
           first_ts AS end_ts,
           first_v AS v
    FROM energy_hours
    WHERE kind <> 'interval'
    WINDOW series AS (PARTITION BY device_id, channel, kind ORDER BY first_ts)
),
spans AS (
    SELECT device_id, channel, kind, preference, start_ts, end_ts,
           CASE WHEN kind = 'counter' THEN CASE WHEN v >= prev_v THEN v - prev_v ELSE v END
                WHEN epoch(end_ts - start_ts) <= getvariable('max_gap_s')
                    THEN (v + prev_v) / 2 * epoch(end_ts - start_ts) / 3600
                ELSE 0 END AS wh
    FROM between_hours
    WHERE start_ts IS NOT NULL
),
per_day AS (
    -- The spans within an hour, and interval readings: on the hour's day.
    SELECT device_id, channel, kind, preference, CAST(first_ts AS DATE) AS date, wh, spans AS readings
    FROM energy_hours
    WHERE spans > 0
    UNION ALL
    -- Spans between hours within one day: on the day they end in.
    SELECT device_id, channel, kind, preference, CAST(end_ts - INTERVAL 1 MICROSECOND AS DATE) AS date, wh, 1
    FROM spans
    WHERE CAST(start_ts AS DATE) = CAST(end_ts - INTERVAL 1 MICROSECOND AS DATE)
    UNION ALL
    -- Spans across midnight, split in proportion to time.
    SELECT device_id, channel, kind, preference, CAST(day AS DATE) AS date,
           wh * epoch(least(end_ts, day + INTERVAL 1 DAY) - greatest(start_ts, day))
              / epoch(end_ts - start_ts) AS wh,
           1
    FROM (
        SELECT *, unnest(generate_series(CAST(CAST(start_ts AS DATE) AS TIMESTAMP),
                                         end_ts - INTERVAL 1 MICROSECOND, INTERVAL 1 DAY)) AS day
        FROM spans
        WHERE CAST(start_ts AS DATE) <> CAST(end_ts - INTERVAL 1 MICROSECOND AS DATE)
    )
),
by_kind AS (
    SELECT date, device_id, channel, kind, preference, sum(wh) AS wh, sum(readings)::BIGINT AS readings
    FROM per_day
    WHERE date BETWEEN getvariable('days_from') AND getvariable('days_to')
    GROUP BY ALL
)
SELECT date, device_id, channel, kind AS method, wh, readings
FROM by_kind
QUALIFY preference = min(preference) OVER (PARTITION BY date, device_id, channel)
