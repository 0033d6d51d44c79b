-- Reference tables the models look metrics up in. A metric is matched by its base name: the part
-- after the channel prefix (`switch0.power` → channel `switch0`, base `power`).

-- Validity ranges. A reading outside its metric's range is invalid: kept in silver (is_valid =
-- false, counted in quality), left out of gold. Metrics without a row here are valid whatever
-- their (finite) value. Seed 002's ranges first, then devicehub's own (its meters run on a
-- 25 kV AC and a 750 V DC railway system, Shellys on 230 V mains).
CREATE OR REPLACE TABLE validity_ranges (base_metric VARCHAR PRIMARY KEY, min_value DOUBLE, max_value DOUBLE, note VARCHAR);
INSERT INTO validity_ranges VALUES
    ('temperature',           -50,    100, 'seed 002: °C'),
    ('power_usage',             0,  10000, 'seed 002: W'),
    ('power',                   0,  10000, 'seed 002: W (Shelly apower)'),
    ('energy_consumption_wh',   0,   NULL, 'seed 002: Wh per reading interval'),
    ('energy',                  0,   NULL, 'cumulative counter (Wh or kWh)'),
    ('humidity',                0,    100, '%'),
    ('voltage',                 0,    300, 'V, mains (230 V systems; 120 V fits too)'),
    ('voltage_ac',              0,  30000, 'V, 25 kV AC traction supply'),
    ('voltage_dc',              0,   1000, 'V, 750 V DC traction supply'),
    ('current',                 0,    100, 'A, a mains circuit'),
    ('current_ac',              0,   2000, 'A, 25 kV AC feeder'),
    ('current_dc',              0,  10000, 'A, 750 V DC feeder'),
    ('power_factor',           -1,      1, 'cos φ'),
    ('pf',                     -1,      1, 'cos φ'),
    ('frequency',              45,     65, 'Hz, 50 and 60 Hz grids'),
    ('freq',                   45,     65, 'Hz');

-- Where energy comes from, in order of preference per device channel and day: a cumulative
-- counter, else per-interval energy, else power integrated over time. `factor` converts the
-- reading's unit to Wh (counter, interval) or W (power).
CREATE OR REPLACE TABLE energy_sources (base_metric VARCHAR, unit VARCHAR, kind VARCHAR, factor DOUBLE, preference INTEGER);
INSERT INTO energy_sources VALUES
    ('energy',                'Wh',  'counter',  1,    1),
    ('energy',                'kWh', 'counter',  1000, 1),
    ('total_energy',          'Wh',  'counter',  1,    1),
    ('total_energy',          'kWh', 'counter',  1000, 1),
    ('energy_consumption_wh', 'Wh',  'interval', 1,    2),
    ('energy_consumption_wh', '',    'interval', 1,    2),
    ('power',                 'W',   'power',    1,    3),
    ('power',                 'kW',  'power',    1000, 3),
    ('power_usage',           'W',   'power',    1,    3),
    ('power_usage',           '',    'power',    1,    3),
    ('apower',                'W',   'power',    1,    3);
