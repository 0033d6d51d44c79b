use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::harness::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_devicehub");

#[tokio::test]
async fn user_add_reads_the_password_from_stdin_and_the_user_can_log_in() {
    let app = spawn_app().await;
    let mut child = Command::new(BIN)
        .args(["user", "add", "--username", "ops", "--role", "operator"])
        .env("DEVICEHUB__DATABASE__URL", app.database_url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ops-password-1\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("role operator"));

    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "ops", "password": "ops-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap();
    // An operator may heartbeat but not register.
    let response = app
        .post_json(
            "/api/devices",
            token,
            &json!({"device_id": "d", "device_name": "D"}),
        )
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn user_add_refuses_a_duplicate_user_and_a_short_password() {
    let app = spawn_app().await;
    let run = |username: &str, password: &str| {
        let mut child = Command::new(BIN)
            .args(["user", "add", "--username", username, "--role", "viewer"])
            .env("DEVICEHUB__DATABASE__URL", app.database_url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(run("ann", "long-enough-password\n").status.success());
    let again = run("ann", "long-enough-password\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let short = run("bob", "short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password must be"));
}

#[test]
fn version_flag_prints_the_version() {
    let output = Command::new(BIN).arg("--version").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        format!("devicehub {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn serve_refuses_to_start_without_a_jwt_secret() {
    let output = Command::new(BIN)
        .arg("serve")
        .env_remove("DEVICEHUB__AUTH__JWT_SECRET")
        .env("DEVICEHUB__AUTH__ENABLED", "true")
        .env("DEVICEHUB__HTTP__BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DEVICEHUB__AUTH__JWT_SECRET"));
}

/// A setting that would do nothing says so at start-up: the router's URL in a process without
/// the pollers role names that role; a misspelt variable names the setting it is closest to.
#[tokio::test]
async fn settings_that_would_do_nothing_are_named_at_start_up() {
    let app = spawn_app().await;
    let (mut command, port) = crate::harness::binary(&app, "ignored");
    let mut child = command
        .env("DEVICEHUB__ROLES", "api,collector")
        .env("DEVICEHUB__MIKROTIK__URL", "https://192.168.88.1/rest")
        .env("DEVICEHUB__MQTT__CLIENTID", "x")
        .env(
            "DEVICEHUB__COLLECTOR__JOURNAL_DIR",
            std::env::temp_dir().join(format!("dh-ignored-{port}")),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let warned = |needle: &str| {
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(needle))
    };
    assert!(
        warned("DEVICEHUB__MIKROTIK__URL is set, but this process does not run the pollers role"),
        "{log}"
    );
    assert!(
        warned("DEVICEHUB__MQTT__CLIENTID is no setting and is ignored; did you mean DEVICEHUB__MQTT__CLIENT_ID?"),
        "{log}"
    );
}
