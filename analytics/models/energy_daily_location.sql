-- Gold: daily energy (kWh) and cost per location, with the energy methods used (counter, interval,
-- power; several joined by '+') and the readings counted.
--
-- Inputs: gold_energy_channel, gold_device_dims; variable tariff_per_kwh.
SELECT c.date, d.location,
       round(sum(c.wh) / 1000, 6) AS energy_kwh,
       round(sum(c.wh) / 1000 * getvariable('tariff_per_kwh'), 6) AS cost,
       string_agg(DISTINCT c.method, '+' ORDER BY c.method) AS method,
       sum(c.readings)::BIGINT AS readings,
       count(DISTINCT c.device_id) AS devices
FROM gold_energy_channel c
JOIN gold_device_dims d USING (device_id)
GROUP BY ALL
