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
