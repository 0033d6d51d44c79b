//! The simulated home and fleet through the analytics: after a short run under the `analytics`
//! role every analytics endpoint answers with data, and a Shelly channel's daily energy is its
//! counter's difference.

use std::time::Duration;

use devicehub::configuration::ProcessRole;
use devicehub_sim::run::run_scenario;
use serde_json::Value;

mod common;

use common::{eventually, scenario, serve, settings, Api};

fn rows(body: &Value) -> &[Value] {
    body.as_array().map(Vec::as_slice).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_home_comes_out_of_the_analytics_with_energy_cost_and_health() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let mut settings = settings(&tag);
    settings.roles = vec![
        ProcessRole::Api,
        ProcessRole::Collector,
        ProcessRole::Analytics,
    ];
    settings.analytics.silver_every_s = 3;
    settings.analytics.gold_every_s = 3;
    let base = serve(settings).await;
    let run = tokio::spawn(run_scenario(
        scenario(&tag, &base),
        tokio::time::sleep(Duration::from_secs(300)),
    ));
    let api = Api::login(&base).await;
    let url = |path: &str| format!("{base}{path}");
    // A while of the home's life (gold is rebuilt every 3 s meanwhile).
    tokio::time::sleep(Duration::from_secs(45)).await;

    // Every endpoint and grouping answers with data, from each energy source the fleet has:
    // seed 002 devices' per-interval energy, the meters' kWh and the plug's Wh counters.
    let by_device = eventually(
        &api,
        url("/api/analytics/energy/daily?group_by=device"),
        90,
        |b| {
            let methods: Vec<&str> = rows(b)
                .iter()
                .filter_map(|r| r["method"].as_str())
                .collect();
            methods.contains(&"interval") && methods.contains(&"counter")
        },
    )
    .await;
    for row in rows(&by_device) {
        let (kwh, cost) = (
            row["energy_kwh"].as_f64().unwrap(),
            row["cost"].as_f64().unwrap(),
        );
        assert!(kwh >= 0.0 && (cost - kwh * 0.12).abs() < 1e-5, "{row}");
    }
    for path in [
        "/api/analytics/energy/daily?group_by=location",
        "/api/analytics/energy/daily?group_by=type",
        "/api/analytics/health",
        "/api/analytics/summary",
    ] {
        eventually(&api, url(path), 30, |b| !rows(b).is_empty()).await;
    }
    let summary = api.get_url(url("/api/analytics/summary")).await;
    let today = &rows(&summary)[rows(&summary).len() - 1];
    assert!(today["total_kwh"].as_f64().unwrap() > 0.0, "{today}");
    assert!(today["active_devices"].as_i64().unwrap() >= 10, "{today}");
    let health = api.get_url(url("/api/analytics/health")).await;
    for device in rows(&health) {
        let score = device["health_score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{device}");
    }

    // Stop the devices; once the last readings are in gold, the plug's daily energy is the
    // difference of its energy counter over the run.
    run.abort();
    let plug = format!("shellyplugs-{tag}");
    let counter = api
        .get_url(url(&format!(
            "/api/devices/{plug}/metrics?start=-1h&metric=switch0.energy"
        )))
        .await;
    let points = rows(&counter);
    assert!(points.len() > 40, "{counter}");
    let first = points[0]["value"].as_f64().unwrap();
    let mut difference = points[points.len() - 1]["value"].as_f64().unwrap() - first;
    let mut energy = 0.0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let counter = api
            .get_url(url(&format!(
                "/api/devices/{plug}/metrics?start=-1h&metric=switch0.energy"
            )))
            .await;
        let points = rows(&counter);
        difference = points[points.len() - 1]["value"].as_f64().unwrap() - first;
        let body = api
            .get_url(url("/api/analytics/energy/daily?group_by=device"))
            .await;
        energy = rows(&body)
            .iter()
            .filter(|r| r["device_id"] == plug.as_str())
            .map(|r| r["energy_kwh"].as_f64().unwrap() * 1000.0)
            .sum();
        if difference > 0.0 && (energy - difference).abs() <= difference * 0.01 {
            break;
        }
    }
    assert!(
        difference > 0.0 && (energy - difference).abs() <= difference * 0.01,
        "the plug's daily energy {energy} Wh against its counter's difference {difference} Wh"
    );
}
