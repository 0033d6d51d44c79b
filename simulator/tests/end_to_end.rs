//! The simulator feeding a real devicehub (in this process, on its own database, topic prefixes,
//! InfluxDB database and archive): after a short run every simulated device is registered,
//! online, has metrics and raw archive objects, and alerts were raised — what `scripts/run.sh`
//! shows a newcomer, checked through the API.

use std::time::Duration;

use devicehub::configuration::ProcessRole;
use devicehub_sim::run::{inventory, run_scenario};
use devicehub_sim::scenario::Scenario;
use secrecy::SecretString;
use serde_json::{json, Value};

mod common;

use common::{broker, eventually, free_port, metric_names, scenario, serve, settings, Api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_home_and_fleet_show_up_in_devicehub_registered_online_with_data_and_alerts() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let base = serve(settings(&tag)).await;

    let scenario = scenario(&tag, &base);
    let devices = inventory(&scenario).unwrap().devices;
    assert_eq!(
        devices.len(),
        13,
        "2 meters, 1 sensor, 8 catalog devices, 1 ESP32, 1 Shelly"
    );
    let run = tokio::spawn(run_scenario(
        scenario,
        tokio::time::sleep(Duration::from_secs(60)),
    ));

    let api = Api::login(&base).await;
    let get = |url: String| api.get_url(url);
    let url = |path: &str| format!("{base}{path}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let mut missing = Vec::new();
        for d in &devices {
            let id = &d.device_id;
            let record = get(url(&format!("/api/devices/{id}"))).await;
            let status = get(url(&format!("/api/devices/{id}/status"))).await;
            let points = get(url(&format!("/api/devices/{id}/metrics?start=-5m"))).await;
            let objects = get(url(&format!("/api/devices/{id}/raw-data"))).await;
            let checks = [
                (
                    "registered",
                    record["status"] == "active" && record["device_type"] == d.device_type.as_str(),
                ),
                ("online", status["connection_status"] == "online"),
                ("metrics", points.as_array().is_some_and(|p| !p.is_empty())),
                (
                    "raw data",
                    objects.as_array().is_some_and(|o| !o.is_empty()),
                ),
            ];
            for (what, ok) in checks {
                if !ok {
                    missing.push(format!("{id}: {what}"));
                }
            }
        }
        let alerts = get(url("/api/alerts")).await;
        let alert_types: Vec<&str> = alerts
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["alert_type"].as_str()).collect())
            .unwrap_or_default();
        if alert_types.is_empty() {
            missing.push("an alert".into());
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 40 s still missing: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!run.is_finished(), "the simulation runs until stopped");
    run.abort();
}

/// A Shelly Pro 4PM polled over HTTP only (its MQTT goes to a broker that is not there), beside
/// a host that does not answer: every channel's power, energy and relay state reach devicehub's
/// metrics through the pipeline, and the poller registers it with what `Shelly.GetDeviceInfo`
/// says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_shelly_reports_every_channel_through_the_pipeline() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let http_port = free_port();
    let id = format!("shellypro4pm-{tag}");
    let mut settings = settings(&tag);
    settings.roles = vec![
        ProcessRole::Api,
        ProcessRole::Collector,
        ProcessRole::Pollers,
    ];
    // A host that is not there, listed first: it must not hold the live one up.
    settings.shelly.hosts = vec![
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{http_port}"),
    ];
    settings.shelly.interval_s = 1;
    let base = serve(settings).await;

    let text = format!(
        r#"
seed = 3
[mqtt]
brokers = ["mqtt://127.0.0.1:1"]
iot_prefix = "iot"
qs_prefix = "qs/v1"
[[shelly]]
id = "{id}"
model = "pro4pm"
http = "127.0.0.1:{http_port}"
interval_s = 1
"#
    );
    let scenario: Scenario = toml::from_str(&text).unwrap();
    let run = tokio::spawn(run_scenario(
        scenario,
        tokio::time::sleep(Duration::from_secs(60)),
    ));

    let api = Api::login(&base).await;
    let (http, token) = (api.http.clone(), api.token.clone());
    let get = |path: String| api.get_url(format!("{base}{path}"));
    let expected: Vec<String> = (0..4)
        .flat_map(|ch| {
            ["power", "voltage", "current", "energy", "output"].map(|m| format!("switch{ch}.{m}"))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let points = get(format!("/api/devices/{id}/metrics?start=-5m")).await;
        let metrics: std::collections::BTreeSet<String> = points
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|x| x["metric"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&String> = expected.iter().filter(|m| !metrics.contains(*m)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 30 s no {missing:?} (have {metrics:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Relay control: channel 1 off, by the Shelly's HTTP RPC; the next poll shows it.
    let sent: Value = http
        .post(format!("{base}/api/devices/{id}/commands"))
        .bearer_auth(&token)
        .json(&json!({"cmd": "switch_set", "params": {"channel": 1, "on": false}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["status"], "accepted", "{sent}");
    let turned_off = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let points = get(format!(
            "/api/devices/{id}/metrics?start=-5s&metric=switch1.output"
        ))
        .await;
        let last = points
            .as_array()
            .and_then(|p| p.last())
            .map(|p| p["value"].clone());
        if last == Some(json!(0.0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < turned_off,
            "switch1 still on: {points}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let bad = http
        .post(format!("{base}/api/devices/{id}/commands"))
        .bearer_auth(&token)
        .json(&json!({"cmd": "switch_set", "params": {"channel": 99, "on": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    let device = get(format!("/api/devices/{id}")).await;
    assert_eq!(device["device_type"], "shelly", "{device}");
    assert_eq!(device["metadata"]["model"], "SPSW-104PE16EU", "{device}");
    assert_eq!(device["metadata"]["generation"], 2, "{device}");
    assert_eq!(device["metadata"]["polled"], true, "{device}");
    run.abort();
}

/// The home network end to end, found the way a home's devices are: the router's leases name
/// two Shelly relays that devicehub polls (a Gen2 Pro 2PM behind digest auth, a Gen1 Shelly 2.5
/// behind basic auth), a Plus Plug S that pushes over MQTT (not polled, controlled over its MQTT
/// RPC) and a HikVision camera (digest auth, alert stream, snapshot). The relays get the shared
/// password because the operator adopted them: the metadata file names their MACs as Shelly
/// devices, and the Gen1 is listed in `shelly.gen1_hosts` for basic auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_network_is_found_through_the_inventory_polled_and_controlled() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    // Each device on its own loopback address, one port for all Shelly devices (as port 80 on
    // a LAN).
    let net = format!("127.{}.{}", 2 + tag.as_bytes()[0] % 200, tag.as_bytes()[1]);
    let (shelly_port, camera_port, router_port) = (free_port(), free_port(), free_port());
    let gen1_mac = format!("a8{tag}");
    let (gen2, gen1, plug) = (
        format!("shellypro2pm-{tag}"),
        format!("shellyshsw-25-{gen1_mac}"),
        format!("shellyplugs-{tag}"),
    );
    let serial = format!("DS-2CD2143G2-I{}", tag.to_uppercase());
    let camera = format!("hikvision-{}", serial.to_lowercase());

    let mut settings = settings(&tag);
    settings.roles = vec![
        ProcessRole::Api,
        ProcessRole::Collector,
        ProcessRole::Pollers,
    ];
    settings.mikrotik.url = Some(format!("http://127.0.0.1:{router_port}/rest"));
    settings.mikrotik.password = Some(SecretString::from("router-test-password"));
    settings.mikrotik.interval_s = 1;
    settings.shelly.port = shelly_port;
    settings.shelly.password = Some(SecretString::from("shelly-test-password"));
    settings.shelly.interval_s = 1;
    settings.shelly.gen1_hosts = vec![format!("{net}.11:{shelly_port}")];
    let metadata = std::env::temp_dir().join(format!("devicehub-home-{tag}.csv"));
    let colons = |id: &str| {
        let mac = devicehub_sim::profiles::shelly::shelly_mac(id);
        (0..6)
            .map(|i| &mac[i * 2..i * 2 + 2])
            .collect::<Vec<_>>()
            .join(":")
    };
    std::fs::write(
        &metadata,
        format!(
            "mac_address,device_type,owner,location\n{},shelly,house,utility\n{},shelly,house,garage\n",
            colons(&gen2),
            colons(&gen1),
        ),
    )
    .unwrap();
    settings.inventory.metadata_csv = metadata;
    settings.hikvision.hosts = vec![format!("{net}.20:{camera_port}")];
    settings.hikvision.password = Some(SecretString::from("camera-test-password"));
    let influx_db = settings.influxdb.database.clone();
    let base = serve(settings).await;

    let text = format!(
        r#"
seed = 4
[mqtt]
brokers = ["{broker}"]
iot_prefix = "t{tag}/iot"
qs_prefix = "t{tag}/qs/v1"
[[shelly]]
id = "{gen2}"
model = "pro2pm"
http = "{net}.10:{shelly_port}"
interval_s = 1
password = "shelly-test-password"
mqtt = false
[[shelly]]
id = "{gen1}"
model = "shelly25"
http = "{net}.11:{shelly_port}"
interval_s = 1
password = "shelly-test-password"
[[shelly]]
id = "{plug}"
model = "plug"
http = "{net}.12:{shelly_port}"
interval_s = 1
[[camera]]
serial = "{serial}"
name = "Front door"
http = "{net}.20:{camera_port}"
password = "camera-test-password"
heartbeat_s = 1
[mikrotik]
http = "127.0.0.1:{router_port}"
username = "admin"
password = "router-test-password"
"#,
        broker = broker(),
    );
    let scenario: Scenario = toml::from_str(&text).unwrap();
    let run = tokio::spawn(run_scenario(
        scenario,
        tokio::time::sleep(Duration::from_secs(120)),
    ));
    let api = Api::login(&base).await;

    // The inventory: every host of the router's leases, the Shelly devices by host name.
    let hosts = eventually(&api, format!("{base}/api/inventory"), 20, |b| {
        b.as_array().is_some_and(|a| a.len() >= 4)
    })
    .await;
    let shelly_ips: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["host_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("shelly"))
        })
        .map(|h| h["ip"].as_str().unwrap())
        .collect();
    assert_eq!(shelly_ips.len(), 3, "{hosts}");

    // Both polled relays, every channel, through the pipeline (digest and basic auth).
    for id in [&gen2, &gen1] {
        let expected: Vec<String> = (0..2)
            .flat_map(|ch| ["power", "energy", "output"].map(|m| format!("switch{ch}.{m}")))
            .collect();
        let points = eventually(
            &api,
            format!("{base}/api/devices/{id}/metrics?start=-5m"),
            30,
            |p| {
                let have = metric_names(p);
                expected.iter().all(|m| have.contains(m))
            },
        )
        .await;
        assert!(!metric_names(&points).is_empty());
    }
    // The inventory names the registered device of each polled host.
    let hosts = api.get_url(format!("{base}/api/inventory")).await;
    for id in [&gen2, &gen1] {
        assert!(
            hosts
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["device_id"] == id.as_str()),
            "{id} in {hosts}"
        );
    }
    let device = api.get_url(format!("{base}/api/devices/{gen1}")).await;
    assert_eq!(device["metadata"]["generation"], 1, "{device}");
    assert_eq!(device["metadata"]["polled"], true, "{device}");
    // Gen1 counts watt-minutes; devicehub stores Wh: energy never exceeds power × uptime.
    let energy = api
        .get_url(format!(
            "{base}/api/devices/{gen1}/metrics?start=-5m&metric=switch0.energy"
        ))
        .await;
    let wh = energy.as_array().unwrap().last().unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(
        wh < 2500.0 * 120.0 / 3600.0,
        "{wh} Wh in two minutes at most"
    );

    // InfluxDB tags each Shelly reading with its channel.
    let influx = std::env::var("DEVICEHUB_TEST_INFLUXDB_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    let tags: Value = api
        .http
        .get(format!("{influx}/query"))
        .query(&[
            ("db", influx_db.as_str()),
            (
                "q",
                &format!("SHOW TAG VALUES FROM iot_telemetry WITH KEY = \"channel\" WHERE device_id = '{gen2}'"),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let channels: Vec<&str> = tags["results"][0]["series"][0]["values"]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x[1].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(channels, ["0", "1"], "{tags}");

    // Relay control over HTTP: the Gen1 relay's channel 1 off, and its next poll shows it.
    let send = |id: String, body: Value| {
        let (http, token, base) = (api.http.clone(), api.token.clone(), base.clone());
        async move {
            http.post(format!("{base}/api/devices/{id}/commands"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let sent = send(
        gen1.clone(),
        json!({"cmd": "switch_set", "params": {"channel": 1, "on": false}}),
    )
    .await;
    assert_eq!(sent["status"], "accepted", "{sent}");
    eventually(
        &api,
        format!("{base}/api/devices/{gen1}/metrics?start=-3s&metric=switch1.output"),
        10,
        |p| {
            p.as_array()
                .and_then(|a| a.last())
                .is_some_and(|x| x["value"] == 0.0)
        },
    )
    .await;

    // The plug pushes over MQTT: devicehub reads it from there, does not poll it, and reaches
    // it by its MQTT RPC; the answer sets the command's status.
    eventually(
        &api,
        format!("{base}/api/devices/{plug}/metrics?start=-1m&metric=switch0.output"),
        20,
        |p| {
            p.as_array()
                .and_then(|a| a.last())
                .is_some_and(|x| x["value"] == 1.0)
        },
    )
    .await;
    let pushed = api
        .get_url(format!("{base}/api/devices/{plug}/metrics?start=-1m"))
        .await;
    for metric in ["switch0.power", "switch0.energy", "switch0.voltage"] {
        assert!(metric_names(&pushed).contains(metric), "{metric}: {pushed}");
    }
    let device = api.get_url(format!("{base}/api/devices/{plug}")).await;
    assert_ne!(device["metadata"]["polled"], true, "{device}");
    // Not polled, but the inventory knows it by MAC.
    eventually(&api, format!("{base}/api/inventory"), 10, |h| {
        h.as_array()
            .is_some_and(|a| a.iter().any(|x| x["device_id"] == plug.as_str()))
    })
    .await;
    let sent = send(
        plug.clone(),
        json!({"cmd": "switch_set", "params": {"channel": 0, "on": false}}),
    )
    .await;
    let cmd_id = sent["cmd_id"].as_str().unwrap().to_owned();
    let commands = eventually(
        &api,
        format!("{base}/api/devices/{plug}/commands"),
        10,
        |c| {
            c.as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["cmd_id"] == cmd_id.as_str() && x["status"] == "accepted")
            })
        },
    )
    .await;
    assert!(commands.to_string().contains("was_on"), "{commands}");
    eventually(
        &api,
        format!("{base}/api/devices/{plug}/metrics?start=-3s&metric=switch0.output"),
        10,
        |p| {
            p.as_array()
                .and_then(|a| a.last())
                .is_some_and(|x| x["value"] == 0.0)
        },
    )
    .await;

    // The camera: registered from its device info, online by its heartbeats.
    let device = eventually(&api, format!("{base}/api/devices/{camera}"), 20, |d| {
        d["connection_status"] == "online"
    })
    .await;
    assert_eq!(device["device_type"], "camera");
    assert_eq!(device["metadata"]["serial"], serial.as_str());
    assert_eq!(device["device_name"], "Front door");
    // A motion burst: an event and one alert within 2 s.
    let started = tokio::time::Instant::now();
    let triggered = api
        .http
        .post(format!("http://{net}.20:{camera_port}/sim/motion"))
        .send()
        .await
        .unwrap();
    assert_eq!(triggered.status(), 202);
    let motion = |alerts: &Value| -> usize {
        alerts.as_array().map_or(0, |a| {
            a.iter().filter(|x| x["alert_type"] == "motion").count()
        })
    };
    eventually(
        &api,
        format!("{base}/api/devices/{camera}/alerts"),
        2,
        |a| motion(a) == 1,
    )
    .await;
    let events = eventually(
        &api,
        format!("{base}/api/devices/{camera}/events"),
        2,
        |e| e.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(events[0]["event_type"], "motion", "{events}");
    assert_eq!(events[0]["meta"]["channel"], 1, "{events}");
    // The burst's three active parts (and its end) make one alert.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let alerts = api
        .get_url(format!("{base}/api/devices/{camera}/alerts"))
        .await;
    assert_eq!(motion(&alerts), 1, "{alerts}");
    let events = api
        .get_url(format!("{base}/api/devices/{camera}/events"))
        .await;
    assert_eq!(events.as_array().unwrap().len(), 3, "{events}");

    // A snapshot: the camera's JPEG, kept in the archive.
    let snapshot = api
        .http
        .get(format!("{base}/api/devices/{camera}/snapshot"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(snapshot.status(), 200);
    assert_eq!(snapshot.headers()["content-type"], "image/jpeg");
    let key = snapshot.headers()["x-archive-key"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        key.starts_with(&format!("snapshots/{camera}/date=")),
        "{key}"
    );
    let jpeg = snapshot.bytes().await.unwrap();
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
    let not_a_camera = api
        .http
        .get(format!("{base}/api/devices/{gen2}/snapshot"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_camera.status(), 409);
    run.abort();
}
