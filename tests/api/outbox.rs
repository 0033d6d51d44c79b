//! The command outbox against a Shelly it reaches over HTTP: whatever the device answers, the
//! command ends with a status and the commands behind it flow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};

use crate::harness::services::free_port;
use crate::harness::spawn_app;

/// A Shelly Gen2 whose `Switch.Set` answers with a NUL byte and a bell in its body the first
/// time, then with a body of 8 MiB; counts the calls.
fn shelly() -> (u16, Arc<AtomicUsize>, actix_web::dev::ServerHandle) {
    let calls = Arc::new(AtomicUsize::new(0));
    let port = free_port();
    let counted = calls.clone();
    let server = HttpServer::new(move || {
        let calls = counted.clone();
        App::new().route(
            "/rpc/Switch.Set",
            web::get().to(move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    let body = if n == 0 {
                        b"{\"was_on\":true}\0\x07".to_vec()
                    } else {
                        vec![b'x'; 8 << 20]
                    };
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body)
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, calls, handle)
}

#[tokio::test]
async fn a_shelly_answer_no_store_can_hold_still_ends_the_command_and_the_next_one_flows() {
    let app = spawn_app().await;
    let (port, calls, server) = shelly();
    app.register_with(json!({
        "device_id": "shelly-relay-1",
        "device_name": "relay",
        "device_type": "shelly",
        "metadata": {"http": format!("127.0.0.1:{port}"), "polled": true, "generation": 2},
    }))
    .await;
    let command = json!({"cmd": "switch_set", "params": {"channel": 0, "on": false}});
    let path = "/api/devices/shelly-relay-1/commands";
    let first: Value = app
        .post_json(path, &app.admin, &command)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_json(path, &app.admin, &command)
        .await
        .json()
        .await
        .unwrap();
    let listed = app
        .eventually(path, 10, |list| {
            list.as_array()
                .is_some_and(|l| l.len() == 2 && l.iter().all(|c| c["status"] == "accepted"))
        })
        .await;
    let detail = |id: &Value| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cmd_id"] == *id)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        detail(&first["cmd_id"]),
        "/rpc/Switch.Set: {\"was_on\":true}\u{fffd}\u{fffd}",
        "the NUL and the bell are replaced, the rest kept"
    );
    let long = detail(&second["cmd_id"]);
    assert!(long.starts_with("/rpc/Switch.Set: xxx"), "{long}");
    assert!(
        long.len() < 300,
        "8 MiB answered, {} bytes kept",
        long.len()
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "each command was sent once"
    );
    server.stop(false).await;
}

/// A device record whose `http` points off the device networks (an admin's typo, or an attempt
/// to aim devicehub at another internal service) gets no request: the command fails saying why.
#[tokio::test]
async fn a_command_to_a_host_off_the_device_networks_is_refused_unsent() {
    let app = spawn_app().await;
    app.register_with(json!({
        "device_id": "shelly-elsewhere",
        "device_name": "relay",
        "device_type": "shelly",
        // TEST-NET-1: never a device network here (loopback and no router configured).
        "metadata": {"http": "192.0.2.10:80", "polled": true, "generation": 2},
    }))
    .await;
    let path = "/api/devices/shelly-elsewhere/commands";
    let command = json!({"cmd": "switch_set", "params": {"channel": 0, "on": true}});
    let status = app.post_json(path, &app.admin, &command).await.status();
    assert!(matches!(status.as_u16(), 201 | 202), "{status}");
    let listed = app
        .eventually(path, 10, |list| {
            list.as_array()
                .is_some_and(|l| l.len() == 1 && l[0]["status"] == "error")
        })
        .await;
    let detail = listed[0]["detail"].as_str().unwrap();
    assert!(detail.contains("device network"), "{detail}");
}
