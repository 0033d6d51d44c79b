//! The live stream for browsers: `POST /api/stream/ticket`, then `GET /api/stream` as
//! Server-Sent Events — readings within a second of their publish, status, alerts and command
//! changes, resume with `Last-Event-ID`, tickets refused when missing, forged or expired.

use std::time::{Duration, Instant};

use devicehub::domain::Role;
use serde_json::{json, Value};

use crate::harness::{
    assert_error, collector_settings, spawn_app, spawn_app_with, test_settings, Device, TestApp,
};

/// One Server-Sent Event.
#[derive(Debug)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A stream as a browser reads it.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// A stream already opened.
    fn reading(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    pub async fn ticket(app: &TestApp, token: &str) -> String {
        let response = app.post_empty("/api/stream/ticket", token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        body["ticket"].as_str().unwrap().to_owned()
    }

    /// Opens `/api/stream?{query}` with a fresh ticket of `token`'s user.
    pub async fn open(app: &TestApp, token: &str, query: &str) -> Self {
        Self::open_with(app, token, query, None).await
    }

    async fn open_with(app: &TestApp, token: &str, query: &str, last: Option<&str>) -> Self {
        let ticket = Self::ticket(app, token).await;
        let mut request = app
            .client
            .get(app.url(&format!("/api/stream?ticket={ticket}&{query}")));
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self::reading(response)
    }

    /// The next complete event in what was read, if any (comment blocks skipped).
    fn take(&mut self) -> Option<Event> {
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).expect("data is JSON"));
                }
            }
            if let (Some(name), Some(data)) = (name, data) {
                return Some(Event { name, id, data });
            }
        }
        None
    }

    /// Reads more of the stream; `false` when nothing came within `left`.
    async fn read(&mut self, left: Duration) -> bool {
        match tokio::time::timeout(left, self.response.chunk()).await {
            Err(_) => false,
            Ok(chunk) => {
                let chunk = chunk
                    .unwrap_or_else(|e| panic!("stream unreadable: {e:?}"))
                    .expect("stream still open");
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
                true
            }
        }
    }

    /// The next event named `name` within `secs`, skipping others (heartbeats).
    pub async fn next_named(&mut self, name: &str, secs: f64) -> Event {
        self.hears(name, secs)
            .await
            .unwrap_or_else(|| panic!("no {name} event within {secs} s"))
    }

    /// The next event named `name` if one arrives within `secs`.
    pub async fn hears(&mut self, name: &str, secs: f64) -> Option<Event> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            while let Some(event) = self.take() {
                if event.name == name {
                    return Some(event);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read(left).await {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn a_reading_reaches_the_stream_within_a_second_of_its_publish() {
    let app = spawn_app_with(collector_settings()).await;
    app.register("live-meter").await;
    app.register("other-meter").await;
    let mut sse = Sse::open(&app, &app.viewer, "device_id=live-meter&kinds=reading").await;
    let device = Device::connect(&[], None).await;
    // Another device's reading is not this stream's.
    device
        .publish_json(
            &app.topic("other-meter", "telemetry"),
            &json!({"device_id": "other-meter", "power": 1.0}),
        )
        .await;
    let published = Instant::now();
    device
        .publish_json(
            &app.topic("live-meter", "telemetry"),
            &json!({"v": 2, "device_id": "live-meter", "ts": "2026-12-01T10:00:00Z", "seq": 1,
                    "msg_type": "telemetry",
                    "measurements": [{"ts": "2026-12-01T10:00:00Z", "type": "power", "val": 512.5, "unit": "W"},
                                     {"ts": "2026-12-01T10:00:00Z", "type": "voltage", "val": 231.0, "unit": "V"}]}),
        )
        .await;
    let event = sse.next_named("readings", 1.0).await;
    let latency = published.elapsed();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert_eq!(
        event.data,
        json!([
            {"time": "2026-12-01T10:00:00Z", "device_id": "live-meter", "metric": "power", "value": 512.5, "unit": "W"},
            {"time": "2026-12-01T10:00:00Z", "device_id": "live-meter", "metric": "voltage", "value": 231.0, "unit": "V"},
        ])
    );
}

#[tokio::test]
async fn readings_reach_an_api_process_without_the_collector_from_the_broker() {
    // spawn_app runs the api role only: readings come from the live relay's own subscription.
    let app = spawn_app().await;
    app.register("relayed").await;
    let mut sse = Sse::open(&app, &app.viewer, "device_id=relayed&kinds=reading").await;
    let device = Device::connect(&[], None).await;
    let topic = app.topic("relayed", "telemetry");
    // The relay subscribes once the stream watches the device: publish until it hears.
    let mut heard = None;
    for i in 0..25 {
        device
            .publish_json(
                &topic,
                &json!({"device_id": "relayed", "temperature": 20.0 + f64::from(i)}),
            )
            .await;
        if let Some(event) = sse.hears("readings", 0.2).await {
            heard = Some(event);
            break;
        }
    }
    let event = heard.expect("a reading through the relay");
    assert_eq!(event.data[0]["device_id"], "relayed");
    assert_eq!(event.data[0]["metric"], "temperature");
    // Nothing was stored: this process has no collector.
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM devices WHERE last_seen IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn readings_of_a_type_reach_a_stream_that_asked_for_the_type() {
    let app = spawn_app_with(collector_settings()).await;
    app.register_with(json!({"device_id": "typed-1", "device_name": "T", "device_type": "meter"}))
        .await;
    app.register_with(json!({"device_id": "untyped-1", "device_name": "U"}))
        .await;
    let mut sse = Sse::open(&app, &app.viewer, "type=meter&kinds=reading").await;
    let device = Device::connect(&[], None).await;
    for id in ["untyped-1", "typed-1"] {
        device
            .publish_json(
                &app.topic(id, "telemetry"),
                &json!({"device_id": id, "power": 7.5}),
            )
            .await;
    }
    let event = sse.next_named("readings", 5.0).await;
    assert_eq!(event.data[0]["device_id"], "typed-1");
    assert_eq!(event.data.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn alerts_missed_while_away_come_first_when_resuming_with_last_event_id() {
    let app = spawn_app().await;
    app.register("resume-1").await;
    let mut sse = Sse::open(&app, &app.viewer, "kinds=alert").await;
    let first = app.raise_alert("resume-1", "warning").await;
    let event = sse.next_named("alert", 5.0).await;
    assert_eq!(event.id.as_deref(), Some(first["id"].to_string().as_str()));
    assert_eq!(
        event.data, first,
        "the event is the alert as the API lists it"
    );
    drop(sse);

    let missed = [
        app.raise_alert("resume-1", "error").await,
        app.raise_alert("resume-1", "critical").await,
    ];
    let last = first["id"].to_string();
    let mut sse = Sse::open_with(&app, &app.viewer, "kinds=alert", Some(&last)).await;
    for alert in &missed {
        let event = sse.next_named("alert", 5.0).await;
        assert_eq!(event.data["id"], alert["id"]);
    }
    let live = app.raise_alert("resume-1", "info").await;
    let event = sse.next_named("alert", 5.0).await;
    assert_eq!(event.data["id"], live["id"], "no alert twice, none skipped");

    // A new EventSource cannot set the header: ?last_event_id= does the same.
    let ticket = Sse::ticket(&app, &app.viewer).await;
    let response = app
        .client
        .get(app.url(&format!(
            "/api/stream?ticket={ticket}&kinds=alert&last_event_id={last}"
        )))
        .send()
        .await
        .unwrap();
    let mut sse = Sse::reading(response);
    assert_eq!(
        sse.next_named("alert", 5.0).await.data["id"],
        missed[0]["id"]
    );
}

#[tokio::test]
async fn a_stream_hears_status_alerts_and_commands_of_its_device_only() {
    let app = spawn_app_with(collector_settings()).await;
    app.register("watched").await;
    app.register("unwatched").await;
    let mut sse = Sse::open(&app, &app.viewer, "device_id=watched").await;
    let device = Device::connect(&[app.topic("watched", "command")], None).await;
    device
        .publish_json(
            &app.topic("unwatched", "status"),
            &json!({"v": 2, "device_id": "unwatched", "status": "online", "ts": "2026-12-01T10:00:00Z"}),
        )
        .await;
    app.raise_alert("unwatched", "critical").await;
    device
        .publish_json(
            &app.topic("watched", "status"),
            &json!({"v": 2, "device_id": "watched", "status": "online", "ts": "2026-12-01T10:00:01Z"}),
        )
        .await;
    let status = sse.next_named("status", 5.0).await;
    assert_eq!(status.data["device_id"], "watched");
    assert_eq!(status.data["connection_status"], "online");

    let created = app
        .post_json(
            "/api/devices/watched/commands",
            &app.operator,
            &json!({"cmd": "reboot"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let mut device = device;
    let (_, sent) = device.next(5).await;
    assert_eq!(sent["cmd_id"], created["cmd_id"]);
    device
        .publish_json(
            &app.topic("watched", "command/ack"),
            &json!({"v": 2, "device_id": "watched", "cmd_id": created["cmd_id"], "result": "accepted"}),
        )
        .await;
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("accepted") {
        let event = sse.next_named("command", 5.0).await;
        assert_eq!(event.data["cmd_id"], created["cmd_id"]);
        statuses.push(event.data["status"].as_str().unwrap().to_owned());
    }
    assert!(statuses.len() >= 2, "{statuses:?}");
    let alert = app.raise_alert("watched", "warning").await;
    let event = sse.next_named("alert", 5.0).await;
    assert_eq!(
        event.data["id"], alert["id"],
        "the other device's critical alert never came"
    );
}

#[tokio::test]
async fn a_stream_needs_a_valid_unexpired_ticket_not_a_token() {
    let mut settings = test_settings();
    settings.stream.ticket_ttl_secs = 1;
    let app = spawn_app_with(settings).await;
    let get = |query: String| {
        let url = app.url(&format!("/api/stream?kinds=alert{query}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let missing = assert_error(get(String::new()).await, 401).await;
    assert!(missing["error"].as_str().is_some(), "{missing}");
    assert_error(get("&ticket=not-a-ticket".into()).await, 401).await;
    // An access token is no ticket, and a ticket no access token.
    assert_error(get(format!("&ticket={}", app.viewer)).await, 401).await;
    let ticket = Sse::ticket(&app, &app.viewer).await;
    assert_error(app.get("/api/stats", &ticket).await, 401).await;
    // Tickets are for callers with a token.
    assert_error(app.post_empty("/api/stream/ticket", "nope").await, 401).await;
    let early = get(format!("&ticket={ticket}")).await;
    assert_eq!(early.status(), 200);
    drop(early);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = assert_error(get(format!("&ticket={ticket}")).await, 401).await;
    assert!(
        expired["error"].as_str().unwrap().contains("expired")
            || expired["details"].to_string().contains("expired"),
        "{expired}"
    );
}

#[tokio::test]
async fn bad_stream_parameters_are_400_with_the_field_named() {
    let app = spawn_app().await;
    let ticket = Sse::ticket(&app, &app.viewer).await;
    for (query, field) in [
        ("kinds=reading", "kinds"),
        ("kinds=everything", "kinds"),
        ("device_id=bad%20id", "device_id"),
        ("type=a%0Ab", "type"),
        ("last_event_id=x", "last_event_id"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/api/stream?ticket={ticket}&{query}")))
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 400).await;
        assert!(body.to_string().contains(field), "{query}: {body}");
    }
}

#[tokio::test]
async fn quiet_streams_get_heartbeats_and_end_when_their_user_is_deleted() {
    let mut settings = test_settings();
    settings.stream.heartbeat_secs = 1;
    let app = spawn_app_with(settings).await;
    app.add_user("watcher", "correct horse battery", Role::Viewer)
        .await;
    let login: Value = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "watcher", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let mut sse = Sse::open(&app, token, "kinds=alert").await;
    let beat = sse.next_named("heartbeat", 3.0).await;
    assert!(beat.data["time"].is_string());
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            "/api/users/watcher",
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let end = sse.next_named("end", 10.0).await;
    assert!(end.data["error"].is_string());
    assert!(
        sse.response.chunk().await.unwrap().is_none(),
        "the stream is closed"
    );
}

#[tokio::test]
async fn a_stream_ends_within_a_heartbeat_of_its_logins_logout_and_a_role_change() {
    let mut settings = test_settings();
    settings.stream.heartbeat_secs = 1;
    let app = spawn_app_with(settings).await;
    app.add_user("watcher", "correct horse battery", Role::Operator)
        .await;
    let (token, refresh) = app.log_in("watcher", "correct horse battery").await;
    let mut sse = Sse::open(&app, &token, "kinds=alert").await;
    let (other, _) = app.log_in("watcher", "correct horse battery").await;
    let mut other_sse = Sse::open(&app, &other, "kinds=alert").await;
    sse.next_named("heartbeat", 3.0).await;
    let out = app
        .client
        .post(app.url("/api/auth/logout"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let end = sse.next_named("end", 2.5).await;
    assert!(
        end.data["error"].as_str().unwrap().contains("logged out"),
        "{:?}",
        end.data
    );
    assert!(sse.response.chunk().await.unwrap().is_none(), "closed");
    // The same user's other login keeps its stream, until the user's role changes.
    other_sse.next_named("heartbeat", 3.0).await;
    let changed = app
        .send_json(
            reqwest::Method::PATCH,
            "/api/users/watcher",
            &app.admin,
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let end = other_sse.next_named("end", 2.5).await;
    assert!(end.data["error"].is_string());
}

#[tokio::test]
async fn a_stream_ends_when_the_access_token_its_ticket_came_from_expires() {
    let mut settings = test_settings();
    settings.stream.heartbeat_secs = 1;
    settings.auth.token_ttl_secs = 2;
    let app = spawn_app_with(settings).await;
    app.add_user("brief", "correct horse battery", Role::Viewer)
        .await;
    let (token, _) = app.log_in("brief", "correct horse battery").await;
    let mut sse = Sse::open(&app, &token, "kinds=alert").await;
    let end = sse.next_named("end", 5.0).await;
    assert!(
        end.data["error"].as_str().unwrap().contains("expired"),
        "{:?}",
        end.data
    );
}

#[tokio::test]
async fn one_user_cannot_take_every_stream() {
    let mut settings = test_settings();
    settings.stream.max_clients_per_user = 2;
    let app = spawn_app_with(settings).await;
    let _a = Sse::open(&app, &app.viewer, "kinds=alert").await;
    let _b = Sse::open(&app, &app.viewer, "kinds=status").await;
    let ticket = Sse::ticket(&app, &app.viewer).await;
    let third = app
        .client
        .get(app.url(&format!("/api/stream?ticket={ticket}")))
        .send()
        .await
        .unwrap();
    assert!(third.headers().contains_key("retry-after"));
    assert_error(third, 429).await;
    // Another user still gets one.
    let _c = Sse::open(&app, &app.operator, "kinds=alert").await;
}

#[tokio::test]
async fn streams_past_the_limit_get_503() {
    let mut settings = test_settings();
    settings.stream.max_clients = 2;
    // A client that left is noticed when its stream is next written to: a heartbeat at most.
    settings.stream.heartbeat_secs = 1;
    let app = spawn_app_with(settings).await;
    let _a = Sse::open(&app, &app.viewer, "kinds=alert").await;
    let _b = Sse::open(&app, &app.viewer, "kinds=status").await;
    let ticket = Sse::ticket(&app, &app.viewer).await;
    let third = app
        .client
        .get(app.url(&format!("/api/stream?ticket={ticket}")))
        .send()
        .await
        .unwrap();
    assert_error(third, 503).await;
    let scrape = app.scrape().await;
    assert!(scrape.contains("devicehub_stream_clients 2\n"), "{scrape}");
    drop(_a);
    // The place is free again once the client is gone.
    let mut freed = false;
    for _ in 0..50 {
        let response = app
            .client
            .get(app.url(&format!("/api/stream?ticket={ticket}")))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed);
}

/// 1,000 idle clients on the real binary cost it less than 32 MiB (resident), i.e. under
/// 32 KiB each. BENCHMARKS.md has the release build's figure (`scripts/bench-stream.sh`).
#[tokio::test]
async fn a_thousand_idle_streams_stay_under_the_memory_bound() {
    let app = spawn_app().await;
    let (mut command, port) = crate::harness::binary(&app, "sse");
    let mut child = command
        .env("DEVICEHUB__HTTP__WORKERS", "2")
        .env("DEVICEHUB__LOG__LEVEL", "warn")
        // One test user stands for the many users of a real fleet: the per-user cap (tested
        // in `one_user_cannot_take_every_stream`) is lifted for it.
        .env("DEVICEHUB__STREAM__MAX_CLIENTS_PER_USER", "2000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "devicehub did not get ready");
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let ticket: Value = client
        .post(format!("{base}/api/stream/ticket"))
        .bearer_auth(&app.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{base}/api/stream?kinds=status,alert,command&ticket={}",
        ticket["ticket"].as_str().unwrap()
    );
    // Warm up (a few streams, so that pools and buffers of the first ones are counted
    // before), then measure the next 1,000.
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(client.get(&url).send().await.unwrap());
    }
    let before = rss();
    // One connection per stream (reqwest pools only idle ones).
    let opened = futures_util::future::join_all((0..1000).map(|_| {
        let client = reqwest::Client::new();
        let url = url.clone();
        async move {
            let mut response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(
                response.chunk().await.unwrap().is_some(),
                "the stream opens"
            );
            (client, response)
        }
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss();
    let per_client = (after.saturating_sub(before)) as f64 / 1000.0;
    eprintln!("1,000 idle streams: RSS {before} kB -> {after} kB, {per_client:.1} kB per client");
    let _ = child.kill();
    let _ = child.wait();
    drop(opened);
    assert!(
        after - before < 32 * 1024,
        "1,000 idle streams cost {} kB",
        after - before
    );
}

/// The relay of an API-only process on the broker as shipped (`config/mosquitto/`: passwords,
/// ACLs): devicehub's user may subscribe to a device's telemetry and a Shelly's status, and the
/// readings devices publish as themselves reach the stream.
#[tokio::test]
async fn the_relay_hears_devices_on_the_shipped_broker() {
    let (tag, dir) = crate::harness::scratch();
    let (meter, shelly) = ("meter-relay01", "shellyplus1pm-relay01");
    let broker = crate::harness::services::mosquitto(&dir, &[meter, shelly]);
    let mut service = crate::harness::Service::new(&tag, broker.port, &dir);
    service.set("DEVICEHUB__ROLES", "api");
    service.start().await;
    let pool = sqlx::PgPool::connect(&service.database_url())
        .await
        .unwrap();
    devicehub::registry::users::create(&pool, "relay-viewer", "placeholder", Role::Viewer)
        .await
        .unwrap();
    let token = crate::harness::token_for(&pool, "relay-viewer", 60).await;
    let base = format!("http://127.0.0.1:{}", service.http);
    let client = reqwest::Client::new();
    let ticket: Value = client
        .post(format!("{base}/api/stream/ticket"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = client
        .get(format!(
            "{base}/api/stream?kinds=reading&device_id={meter},{shelly}&ticket={}",
            ticket["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut sse = Sse::reading(response);
    let as_device = |id: &str| {
        let mut options =
            rumqttc::MqttOptions::new(format!("{id}-{tag}"), "127.0.0.1", broker.port);
        options.set_credentials(id, crate::harness::services::DEVICE_PASSWORD);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        client
    };
    let (meter_client, shelly_client) = (as_device(meter), as_device(shelly));
    let mut heard = std::collections::BTreeSet::new();
    for _ in 0..25 {
        meter_client
            .publish(
                format!("iot/{meter}/telemetry"),
                rumqttc::QoS::AtLeastOnce,
                false,
                json!({"device_id": meter, "voltage": 230.5}).to_string(),
            )
            .await
            .unwrap();
        shelly_client
            .publish(
                format!("{shelly}/status/switch:0"),
                rumqttc::QoS::AtLeastOnce,
                false,
                json!({"id": 0, "output": true, "apower": 12.5}).to_string(),
            )
            .await
            .unwrap();
        while let Some(event) = sse.hears("readings", 0.2).await {
            for point in event.data.as_array().unwrap() {
                heard.insert(format!(
                    "{}/{}",
                    point["device_id"].as_str().unwrap(),
                    point["metric"].as_str().unwrap()
                ));
            }
        }
        if heard.len() >= 3 {
            break;
        }
    }
    assert!(heard.contains(&format!("{meter}/voltage")), "{heard:?}");
    assert!(
        heard.contains(&format!("{shelly}/switch0.power")),
        "{heard:?}"
    );
    drop(service);
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}
