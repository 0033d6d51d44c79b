//! The DuckDB inventory end to end: the Mikrotik poller against a RouterOS emulator of the
//! test's own, the device metadata file, `GET /api/inventory` with its filters, one host's
//! history, and the `unknown_device` alert raised once per new MAC, across restarts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use devicehub::configuration::ProcessRole;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::harness::services::free_port;
use crate::harness::{assert_error, spawn_app_with, test_settings};

const PHONE: &str = "3C:22:FB:00:00:01";
const RELAY: &str = "A8:03:2A:B1:C2:D4";
const STRANGER: &str = "DE:AD:BE:EF:00:01";

/// A router whose phone moves from .30 to .31 after its third lease poll, and whose stranger
/// has no host name.
fn router() -> (u16, actix_web::dev::ServerHandle) {
    let polls = Arc::new(AtomicUsize::new(0));
    let port = free_port();
    let server = HttpServer::new(move || {
        let polls = polls.clone();
        App::new()
            .route(
                "/rest/ip/dhcp-server/lease",
                web::get().to(move || {
                    let n = polls.fetch_add(1, Ordering::SeqCst);
                    let phone_ip = if n < 3 {
                        "192.168.88.30"
                    } else {
                        "192.168.88.31"
                    };
                    async move {
                        HttpResponse::Ok().json(json!([
                            {".id": "*1", "address": "192.168.88.10", "mac-address": RELAY,
                             "host-name": "shellypro4pm-a8032ab1c2d4", "status": "bound",
                             "dynamic": "true", "last-seen": "9s", "expires-after": "9m"},
                            {".id": "*2", "address": phone_ip, "mac-address": "3c-22-fb-00-00-01",
                             "host-name": "annas-phone", "status": "bound", "dynamic": "true",
                             "last-seen": "2s"},
                            {".id": "*3", "address": "192.168.88.99", "mac-address": STRANGER,
                             "status": "bound", "dynamic": "true", "last-seen": "1m"},
                        ]))
                    }
                }),
            )
            .route(
                "/rest/interface/wifi/registration-table",
                web::get().to(|| async {
                    HttpResponse::Ok().json(json!([
                        {"mac-address": PHONE, "interface": "wifi2", "signal": "-58",
                         "uptime": "1h2m"}
                    ]))
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, handle)
}

fn settings(port: u16, metadata: &std::path::Path) -> devicehub::configuration::Settings {
    let mut settings = test_settings();
    settings.roles = vec![ProcessRole::Api, ProcessRole::Pollers];
    settings.mikrotik.url = Some(format!("http://127.0.0.1:{port}/rest"));
    settings.mikrotik.password = Some(SecretString::from("router-password"));
    settings.mikrotik.interval_s = 1;
    settings.inventory.metadata_csv = metadata.to_owned();
    settings
}

fn by_mac<'a>(hosts: &'a Value, mac: &str) -> &'a Value {
    hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["mac"] == mac)
        .unwrap_or_else(|| panic!("{mac} is not in {hosts}"))
}

fn macs(hosts: &Value) -> Vec<&str> {
    hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["mac"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_inventory_joins_leases_wifi_and_metadata_and_alerts_each_unknown_mac_once() {
    let dir = std::env::temp_dir().join(format!("devicehub-inv-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let metadata = dir.join("device_metadata.csv");
    // MACs spelled as people write them: lower case, dashes, none.
    std::fs::write(
        &metadata,
        "mac_address,device_type,owner,location,name\n\
         3c-22-fb-00-00-01,phone,anna,home,Anna's phone\n\
         a8032ab1c2d4,shelly,house,kitchen,\n",
    )
    .unwrap();
    let (port, router) = router();
    let app = spawn_app_with(settings(port, &metadata)).await;

    let hosts = app
        .eventually("/api/inventory", 20, |b| {
            b.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    assert_eq!(macs(&hosts), [PHONE, RELAY, STRANGER], "by MAC");
    let phone = by_mac(&hosts, PHONE);
    assert_eq!(phone["host_name"], "annas-phone");
    assert_eq!(phone["name"], "Anna's phone");
    assert_eq!(
        (&phone["owner"], &phone["location"], &phone["device_type"]),
        (&json!("anna"), &json!("home"), &json!("phone"))
    );
    assert_eq!(
        (&phone["present"], &phone["known"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(phone["lease_status"], "bound");
    assert_eq!(phone["wifi_interface"], "wifi2");
    assert_eq!(phone["signal_dbm"], -58);
    assert!(phone["last_seen"]
        .as_str()
        .is_some_and(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()));
    let relay = by_mac(&hosts, RELAY);
    assert_eq!(
        (&relay["device_type"], &relay["present"]),
        (&json!("shelly"), &json!(false))
    );
    assert_eq!(relay["ip"], "192.168.88.10");
    let stranger = by_mac(&hosts, STRANGER);
    assert_eq!(
        (
            &stranger["device_type"],
            &stranger["known"],
            &stranger["host_name"],
            &stranger["name"]
        ),
        (&json!("unknown"), &json!(false), &Value::Null, &Value::Null)
    );
    assert_eq!(stranger["ip"], "192.168.88.99");
    assert_eq!(stranger["device_id"], Value::Null);

    // Filters.
    for (query, expected) in [
        ("known=false", vec![STRANGER]),
        ("known=true", vec![PHONE, RELAY]),
        ("present=true", vec![PHONE]),
        ("type=shelly", vec![RELAY]),
        ("type=unknown", vec![STRANGER]),
        ("owner=anna&present=true", vec![PHONE]),
        ("location=kitchen", vec![RELAY]),
        ("location=garage", vec![]),
    ] {
        let body: Value = app
            .get(&format!("/api/inventory?{query}"), &app.viewer)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(macs(&body), expected, "{query}");
    }
    assert_error(
        app.get("/api/inventory?known=maybe", &app.viewer).await,
        400,
    )
    .await;
    assert_error(app.get("/api/inventory?colour=red", &app.viewer).await, 400).await;
    assert_error(app.get("/api/inventory", "not-a-token").await, 401).await;

    // One host with its history: the phone moved from .30 to .31 after the third poll.
    let phone = app
        .eventually("/api/inventory/3c22.fb00.0001", 20, |b| {
            b["ip_history"].as_array().is_some_and(|h| h.len() >= 2)
        })
        .await;
    assert_eq!(phone["mac"], PHONE);
    assert_eq!(phone["ip"], "192.168.88.31");
    let history = phone["ip_history"].as_array().unwrap();
    assert_eq!(history[0]["ip"], "192.168.88.30");
    assert_eq!(history[1]["ip"], "192.168.88.31");
    assert!(history[0]["from"].as_str().unwrap() <= history[0]["to"].as_str().unwrap());
    assert!(history[0]["to"].as_str().unwrap() < history[1]["from"].as_str().unwrap());
    let presence = phone["presence_history"].as_array().unwrap();
    assert_eq!(presence.len(), 1, "on Wi-Fi at every poll: {presence:?}");
    assert_eq!(
        (&presence[0]["present"], &presence[0]["interface"]),
        (&json!(true), &json!("wifi2"))
    );
    assert_error(app.get("/api/inventory/not-a-mac", &app.viewer).await, 400).await;
    let missing = assert_error(
        app.get("/api/inventory/00:00:00:00:00:01", &app.viewer)
            .await,
        404,
    )
    .await;
    assert_eq!(missing["details"]["mac"], "00:00:00:00:00:01");

    // One alert for the one unknown MAC, however many polls saw it.
    let unknown_alerts = |alerts: &Value| -> Vec<String> {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["alert_type"] == "unknown_device")
            .map(|a| a["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let alerts: Value = app
        .get("/api/alerts", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    let raised = unknown_alerts(&alerts);
    assert_eq!(raised.len(), 1, "{alerts}");
    assert!(
        raised[0].contains(STRANGER) && raised[0].contains("192.168.88.99"),
        "{}",
        raised[0]
    );

    // A second process on the same database and lake (a restart) loads the history from the
    // lake and raises no second alert.
    let mut second = app.settings.clone();
    second.mqtt.client_id.push_str("-again");
    let again = spawn_app_with(second).await;
    let hosts = again
        .eventually("/api/inventory", 20, |b| {
            b.as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    assert_eq!(by_mac(&hosts, STRANGER)["known"], false);
    let history: Value = again
        .get("/api/inventory/3C:22:FB:00:00:01", &again.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        history["ip_history"].as_array().unwrap().len() >= 2,
        "{history}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let alerts: Value = app
        .get("/api/alerts", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unknown_alerts(&alerts).len(), 1, "{alerts}");

    // The metadata file changes: the stranger becomes known, no restart needed.
    std::fs::write(
        &metadata,
        "mac_address,device_type,owner,location,name\n\
         3c-22-fb-00-00-01,phone,anna,home,Anna's phone\n\
         a8032ab1c2d4,shelly,house,kitchen,\n\
         DE:AD:BE:EF:00:01,printer,house,office,Printer\n",
    )
    .unwrap();
    let hosts = app
        .eventually("/api/inventory?known=false", 20, |b| {
            b.as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert_eq!(hosts, json!([]));
    router.stop(true).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A Shelly-shaped host on the LAN at `ip:port` that asks for digest auth on every request
/// without credentials, and answers as `id` with `mac` once it gets some (or if it never asks);
/// records the `Authorization` headers it is sent.
async fn lan_shelly(
    ip: &str,
    port: u16,
    (id, mac): (&str, &str),
    challenge: bool,
) -> Arc<std::sync::Mutex<Vec<Option<String>>>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log, id, mac) = (seen.clone(), id.to_owned(), mac.to_owned());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (log, id, mac) = (log.clone(), id.clone(), mac.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let authorization = text
                    .lines()
                    .find(|l| l.to_lowercase().starts_with("authorization:"))
                    .map(str::to_owned);
                log.lock().unwrap().push(authorization.clone());
                let path = text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let response = if challenge && authorization.is_none() {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest qop=\"auth\", realm=\"shelly\", nonce=\"60dc59c6\", algorithm=SHA-256\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    let body = if path.starts_with("/rpc/Shelly.GetDeviceInfo") {
                        json!({"id": id, "gen": 2, "mac": mac, "model": "SNSW-001P16EU", "ver": "1.4.4"})
                    } else {
                        json!({"switch:0": {"id": 0, "apower": 12.5, "output": true,
                                            "aenergy": {"total": 10.0}}})
                    };
                    let body = body.to_string();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    seen
}

/// A router leasing three addresses to hosts named `shelly...`: one the metadata file adopts,
/// one known by its name alone, and one whose answer names another MAC than its lease's.
fn shelly_router(leases: Value) -> (u16, actix_web::dev::ServerHandle) {
    let port = free_port();
    let server = HttpServer::new(move || {
        let leases = leases.clone();
        App::new()
            .route(
                "/rest/ip/dhcp-server/lease",
                web::get().to(move || {
                    let leases = leases.clone();
                    async move { HttpResponse::Ok().json(leases) }
                }),
            )
            .route(
                "/rest/interface/wifi/registration-table",
                web::get().to(|| async { HttpResponse::Ok().json(json!([])) }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, handle)
}

/// Found on the LAN, a Shelly gets the shared password only when the operator adopted it (the
/// metadata file names its MAC a Shelly); one known by its DHCP name alone is polled without
/// it, and one whose answer names another MAC than the router's lease is refused with an
/// `identity_conflict` alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_adopted_shellys_get_the_password_and_a_lease_mismatch_is_refused() {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let n = 30 + (tag.as_bytes()[0] % 200);
    let (adopted_ip, named_ip, rogue_ip) = (
        format!("127.0.{n}.1"),
        format!("127.0.{n}.2"),
        format!("127.0.{n}.3"),
    );
    let port = free_port();
    let adopted_mac = format!("02:AD:{}:{}:00:01", &tag[..2], &tag[2..4]).to_uppercase();
    let named_mac = format!("02:AD:{}:{}:00:02", &tag[..2], &tag[2..4]).to_uppercase();
    let rogue_lease_mac = format!("02:AD:{}:{}:00:03", &tag[..2], &tag[2..4]).to_uppercase();
    let plain = |mac: &str| mac.replace(':', "");
    let adopted_id = format!("shellyplus1pm-{}", plain(&adopted_mac).to_lowercase());
    let named_id = format!("shellyplus1pm-{}", plain(&named_mac).to_lowercase());
    let adopted = lan_shelly(&adopted_ip, port, (&adopted_id, &plain(&adopted_mac)), true).await;
    let named = lan_shelly(&named_ip, port, (&named_id, &plain(&named_mac)), true).await;
    let rogue = lan_shelly(
        &rogue_ip,
        port,
        ("shellyplus1pm-0a0b0c0d0e0f", "0A0B0C0D0E0F"),
        false,
    )
    .await;
    let lease = |ip: &str, mac: &str, name: &str| {
        json!({"address": ip, "mac-address": mac, "host-name": name, "status": "bound",
               "dynamic": "true", "last-seen": "5s"})
    };
    let (router_port, router) = shelly_router(json!([
        lease(&adopted_ip, &adopted_mac, "shellyplus1pm-adopted"),
        lease(&named_ip, &named_mac, "shellyplus1pm-named"),
        lease(&rogue_ip, &rogue_lease_mac, "shellyplus1pm-rogue"),
    ]));
    let metadata = std::env::temp_dir().join(format!("devicehub-adopt-{tag}.csv"));
    std::fs::write(
        &metadata,
        format!("mac_address,device_type,owner,location\n{adopted_mac},shelly,house,kitchen\n"),
    )
    .unwrap();
    let mut settings = settings(router_port, &metadata);
    settings.roles = vec![
        ProcessRole::Api,
        ProcessRole::Collector,
        ProcessRole::Pollers,
    ];
    settings.shelly.port = port;
    settings.shelly.interval_s = 1;
    settings.shelly.password = Some(SecretString::from("the-shared-shelly-password"));
    let app = spawn_app_with(settings).await;

    app.eventually(&format!("/api/devices/{adopted_id}"), 30, |d| {
        d["metadata"]["polled"] == true
    })
    .await;
    let alerts = app
        .eventually("/api/alerts", 30, |alerts| {
            alerts
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["alert_type"] == "identity_conflict"))
        })
        .await;
    let conflict = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert_type"] == "identity_conflict")
        .unwrap();
    assert!(
        conflict["message"]
            .as_str()
            .unwrap()
            .contains(&format!("leased its address to MAC {rogue_lease_mac}")),
        "{conflict}"
    );
    // The named one asked for the password several times and never got it.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let named_seen = named.lock().unwrap().clone();
    assert!(named_seen.len() >= 2, "{named_seen:?}");
    assert!(named_seen.iter().all(Option::is_none), "{named_seen:?}");
    let adopted_seen = adopted.lock().unwrap().clone();
    assert!(
        adopted_seen
            .iter()
            .flatten()
            .any(|a| a.to_lowercase().contains("digest")),
        "{adopted_seen:?}"
    );
    assert!(rogue.lock().unwrap().iter().all(Option::is_none));
    assert_eq!(
        app.get("/api/devices/shellyplus1pm-0a0b0c0d0e0f", &app.viewer)
            .await
            .status(),
        404,
        "nothing registered under the rogue's claim"
    );
    router.stop(false).await;
}
