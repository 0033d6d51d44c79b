//! Plausible physics for simulated readings: seeded randomness, mean-reverting noise (values
//! move continuously instead of jumping), daily cycles, and energy that integrates power.

use chrono::{DateTime, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};

/// A device's own random stream, derived from the scenario seed and the device id, so a device
/// draws the same values whatever other devices run beside it.
pub struct Rng(StdRng);

impl Rng {
    pub fn for_device(seed: u64, device: &str) -> Self {
        Self(StdRng::seed_from_u64(seed ^ fnv1a(device.as_bytes())))
    }

    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// A standard normal value (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n.max(1))
    }
}

/// FNV-1a: a hash that is stable across Rust versions and platforms, unlike `DefaultHasher`,
/// for values derived from ids (random streams, MAC addresses).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Ornstein–Uhlenbeck noise: pulled back towards a (moving) mean at rate `theta` per second,
/// with `sigma` of diffusion per √second. Continuous, bounded in practice, never drifting off.
#[derive(Debug, Clone)]
pub struct MeanReverting {
    pub value: f64,
    pub theta: f64,
    pub sigma: f64,
}

impl MeanReverting {
    pub fn new(start: f64, theta: f64, sigma: f64) -> Self {
        Self {
            value: start,
            theta,
            sigma,
        }
    }

    pub fn step(&mut self, rng: &mut Rng, mean: f64, dt_s: f64) -> f64 {
        self.value +=
            self.theta * (mean - self.value) * dt_s + self.sigma * dt_s.sqrt() * rng.normal();
        self.value
    }
}

/// A daily cycle in [-1, 1] that peaks at `peak_hour` (UTC).
pub fn daily(t: DateTime<Utc>, peak_hour: f64) -> f64 {
    let hour = f64::from(t.hour()) + f64::from(t.minute()) / 60.0 + f64::from(t.second()) / 3600.0;
    (std::f64::consts::TAU * (hour - peak_hour) / 24.0).cos()
}

/// Energy as the integral of power over time.
#[derive(Debug, Clone, Default)]
pub struct EnergyMeter {
    pub wh: f64,
}

impl EnergyMeter {
    /// Adds `power_w` held for `dt_s` seconds and returns the energy of that interval in Wh.
    pub fn add(&mut self, power_w: f64, dt_s: f64) -> f64 {
        let wh = power_w.max(0.0) * dt_s / 3600.0;
        self.wh += wh;
        wh
    }
}

/// Rounds to `digits` decimals, as a device's firmware would print it.
pub fn round(value: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (value * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_device_give_the_same_values() {
        let draw = |seed, device| {
            let mut rng = Rng::for_device(seed, device);
            (0..5).map(|_| rng.normal()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, "meter-001"), draw(7, "meter-001"));
        assert_ne!(draw(7, "meter-001"), draw(7, "meter-002"));
        assert_ne!(draw(7, "meter-001"), draw(8, "meter-001"));
    }

    #[test]
    fn mean_reverting_noise_is_continuous_and_stays_near_its_mean() {
        let mut rng = Rng::for_device(1, "x");
        let mut v = MeanReverting::new(25_000.0, 0.05, 40.0);
        let mut last = v.value;
        for _ in 0..100_000 {
            let x = v.step(&mut rng, 25_000.0, 1.0);
            assert!((x - last).abs() < 400.0, "a jump from {last} to {x}");
            assert!((x - 25_000.0).abs() < 2_000.0, "drifted to {x}");
            last = x;
        }
    }

    #[test]
    fn energy_integrates_power() {
        let mut e = EnergyMeter::default();
        for _ in 0..3600 {
            e.add(1000.0, 1.0);
        }
        assert!((e.wh - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn the_daily_cycle_peaks_at_its_hour() {
        let at = |h| {
            DateTime::parse_from_rfc3339(&format!("2026-01-01T{h:02}:00:00Z"))
                .unwrap()
                .to_utc()
        };
        assert!((daily(at(18), 18.0) - 1.0).abs() < 1e-9);
        assert!((daily(at(6), 18.0) + 1.0).abs() < 1e-9);
    }
}
