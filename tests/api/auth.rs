use devicehub::domain::Role;
use devicehub::startup::Application;
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app, spawn_app_with, test_settings, TEST_SECRET};

/// Every `/api` route with a body that would be valid, so that only auth decides the outcome.
fn api_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/devices", None),
        (
            Method::POST,
            "/api/devices",
            Some(json!({"device_id": "x1", "device_name": "X"})),
        ),
        (Method::GET, "/api/devices/d1", None),
        (
            Method::PUT,
            "/api/devices/d1",
            Some(json!({"device_name": "Y"})),
        ),
        (Method::DELETE, "/api/devices/d1", None),
        (Method::POST, "/api/devices/d1/heartbeat", None),
        (Method::GET, "/api/devices/d1/status", None),
        (Method::GET, "/api/devices/d1/configs", None),
        (
            Method::PUT,
            "/api/devices/d1/configs/k",
            Some(json!({"value": 1})),
        ),
        (Method::DELETE, "/api/devices/d1/configs/k", None),
        (Method::GET, "/api/devices/d1/alerts", None),
        (
            Method::POST,
            "/api/devices/d1/alerts",
            Some(json!({"alert_type": "t", "severity": "info"})),
        ),
        (Method::GET, "/api/alerts", None),
        (Method::POST, "/api/alerts/1/acknowledge", None),
        (Method::GET, "/api/devices/d1/events", None),
        (Method::GET, "/api/stats", None),
        (Method::GET, "/api/devices/d1/metrics", None),
        (Method::GET, "/api/devices/d1/raw-data", None),
        (Method::GET, "/api/devices/d1/commands", None),
        (
            Method::POST,
            "/api/devices/d1/commands",
            Some(json!({"cmd": "reboot"})),
        ),
        (Method::GET, "/api/users", None),
        (
            Method::POST,
            "/api/users",
            Some(json!({"username": "u1", "password": "long-enough-1", "role": "viewer"})),
        ),
        (
            Method::PATCH,
            "/api/users/u1",
            Some(json!({"role": "operator"})),
        ),
        (Method::DELETE, "/api/users/u1", None),
    ]
}

async fn call(
    app: &crate::harness::TestApp,
    method: &Method,
    path: &str,
    body: &Option<Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.request(method.clone(), path, token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_api_route_is_401_without_a_token() {
    let app = spawn_app().await;
    for (method, path, body) in api_routes() {
        let response = call(&app, &method, path, &body, None).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        let body = assert_error(response, 401).await;
        assert_eq!(
            body["details"]["reason"], "missing Authorization header",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn garbage_and_foreign_tokens_are_401() {
    let app = spawn_app().await;
    let foreign = TokenIssuerFor::other()
        .issue(&devicehub::auth::Session {
            username: "mallory".into(),
            role: Role::Admin,
            generation: 0,
            login: None,
        })
        .unwrap();
    for token in ["not-a-jwt", "a.b.c", foreign.as_str()] {
        let response = app.get("/api/devices", token).await;
        let body = assert_error(response, 401).await;
        assert_eq!(body["details"]["reason"], "invalid token");
    }
    let response = app
        .client
        .get(app.url("/api/devices"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_error(response, 401).await;
}

struct TokenIssuerFor;
impl TokenIssuerFor {
    fn other() -> devicehub::auth::TokenIssuer {
        devicehub::auth::TokenIssuer::new(&SecretString::from("another-secret-".repeat(3)), 3600)
    }
}

#[tokio::test]
async fn expired_token_is_401_saying_it_expired() {
    let app = spawn_app().await;
    let claims = json!({"sub": "ann", "role": "admin", "iat": 1, "exp": 2, "iss": "devicehub"});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    let body = assert_error(app.get("/api/devices", &token).await, 401).await;
    assert_eq!(body["details"]["reason"], "token expired");
}

#[tokio::test]
async fn login_returns_a_bearer_token_that_opens_the_api() {
    let app = spawn_app().await;
    app.add_user("ann", "correct horse battery", Role::Viewer)
        .await;
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "ann", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/devices", token).await.status(), 200);
    // The token carries the user's role: a viewer cannot register devices.
    let response = app
        .post_json(
            "/api/devices",
            token,
            &json!({"device_id": "d", "device_name": "D"}),
        )
        .await;
    assert_error(response, 403).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.add_user("ann", "correct horse battery", Role::Admin)
        .await;
    let mut messages = Vec::new();
    for (user, password) in [("ann", "wrong password"), ("bob", "correct horse battery")] {
        let response = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        messages.push(assert_error(response, 401).await);
    }
    assert_eq!(messages[0], messages[1]);
}

#[tokio::test]
async fn malformed_login_bodies_are_rejected_with_json() {
    let app = spawn_app().await;
    let url = app.url("/api/auth/login");
    let response = app
        .client
        .post(&url)
        .json(&json!({"username": "ann"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 422).await;
    let response = app
        .client
        .post(&url)
        .json(&json!({"username": "", "password": "x"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 422).await;
    assert!(body["details"]["username"].is_array(), "{body}");
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_error(response, 400).await;
}

#[tokio::test]
async fn login_is_rate_limited_per_client() {
    let mut settings = test_settings();
    settings.auth.login_attempts_per_minute = 3;
    let app = spawn_app_with(settings).await;
    let attempt = || {
        app.client
            .post(app.url("/api/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong password"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), 401);
    }
    let response = attempt().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_error(response, 429).await;
}

#[tokio::test]
async fn viewer_reads_everything_but_users_and_every_write_is_403() {
    let app = spawn_app().await;
    app.register("d1").await;
    for (method, path, body) in api_routes() {
        let response = call(&app, &method, path, &body, Some(&app.viewer)).await;
        if method == Method::GET && !path.starts_with("/api/users") {
            assert_eq!(response.status(), 200, "{method} {path}");
        } else {
            let body = assert_error(response, 403).await;
            assert!(body["details"]["reason"].as_str().unwrap().contains("role"));
        }
    }
}

#[tokio::test]
async fn operator_operates_devices_but_cannot_manage_them() {
    let app = spawn_app().await;
    app.register("d1").await;
    let alert = app.raise_alert("d1", "info").await;
    let alert_path = format!("/api/alerts/{}/acknowledge", alert["id"]);
    let allowed: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/devices/d1/heartbeat".into(), None),
        (
            Method::PUT,
            "/api/devices/d1/configs/k".into(),
            Some(json!({"value": 1})),
        ),
        (Method::DELETE, "/api/devices/d1/configs/k".into(), None),
        (
            Method::POST,
            "/api/devices/d1/alerts".into(),
            Some(json!({"alert_type": "t", "severity": "info"})),
        ),
        (Method::POST, alert_path, None),
    ];
    for (method, path, body) in &allowed {
        let response = call(&app, method, path, body, Some(&app.operator)).await;
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/api/devices",
            Some(json!({"device_id": "x1", "device_name": "X"})),
        ),
        (
            Method::PUT,
            "/api/devices/d1",
            Some(json!({"device_name": "Y"})),
        ),
        (Method::DELETE, "/api/devices/d1", None),
    ] {
        let response = call(&app, &method, path, &body, Some(&app.operator)).await;
        assert_error(response, 403).await;
    }
}

#[tokio::test]
async fn with_auth_disabled_anonymous_callers_are_admins() {
    let mut settings = test_settings();
    settings.auth.enabled = false;
    settings.auth.jwt_secret = None;
    let app = spawn_app_with(settings).await;
    let response = app
        .client
        .post(app.url("/api/devices"))
        .json(&json!({"device_id": "lan-1", "device_name": "LAN device"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = app
        .client
        .get(app.url("/api/devices/lan-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn service_refuses_to_start_with_auth_on_and_a_short_or_missing_secret() {
    for secret in [None, Some("short-secret")] {
        let mut settings = test_settings();
        settings.auth.jwt_secret = secret.map(SecretString::from);
        let error = Application::build(settings).await.err().expect("refused");
        assert!(error.to_string().contains("jwt_secret"), "{error}");
    }
}

#[tokio::test]
async fn admins_manage_users_and_a_change_reaches_tokens_already_issued() {
    let app = spawn_app().await;
    let created = app
        .post_json(
            "/api/users",
            &app.admin,
            &json!({"username": "anna", "password": "anna-password-1", "role": "operator"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["role"], "operator");
    assert!(created.get("password_hash").is_none());
    let again = app
        .post_json(
            "/api/users",
            &app.admin,
            &json!({"username": "anna", "password": "anna-password-1", "role": "viewer"}),
        )
        .await;
    assert_error(again, 409).await;
    let listed: Value = app
        .get("/api/users", &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == "anna"));
    assert_error(app.get("/api/users", &app.operator).await, 403).await;

    let anna = app.log_in("anna", "anna-password-1").await.0;
    let command = json!({"cmd": "reboot"});
    app.register("d1").await;
    assert_eq!(
        app.post_json("/api/devices/d1/commands", &anna, &command)
            .await
            .status(),
        201
    );
    // Demoted: the token issued before stops working at once (this process made the change).
    let demoted = app
        .send_json(
            Method::PATCH,
            "/api/users/anna",
            &app.admin,
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(demoted.status(), 200);
    let body = assert_error(app.get("/api/devices", &anna).await, 401).await;
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("log in again"),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let anna = app.log_in("anna", "anna-password-1").await.0;
    assert_eq!(app.get("/api/devices", &anna).await.status(), 200);
    assert_error(
        app.post_json("/api/devices/d1/commands", &anna, &command)
            .await,
        403,
    )
    .await;

    // A change made elsewhere (another replica, the database) arrives within seconds.
    sqlx::query("DELETE FROM users WHERE username = 'anna'")
        .execute(&app.pool)
        .await
        .unwrap();
    let deleted = std::time::Instant::now();
    loop {
        let status = app.get("/api/devices", &anna).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            deleted.elapsed() < std::time::Duration::from_secs(7),
            "the deleted user's token still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "a deleted user's token was refused after {:?}",
        deleted.elapsed()
    );

    assert_error(
        app.request(Method::DELETE, "/api/users/anna", Some(&app.admin))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let yourself = app
        .request(Method::DELETE, "/api/users/test-admin", Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_error(yourself, 409).await;
    let deleted = app
        .request(Method::DELETE, "/api/users/test-operator", Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_error(app.get("/api/devices", &app.operator).await, 401).await;
}

#[tokio::test]
async fn user_input_breaking_the_rules_is_422() {
    let app = spawn_app().await;
    for body in [
        json!({"username": "has space", "password": "long-enough-1", "role": "viewer"}),
        json!({"username": "ok", "password": "short", "role": "viewer"}),
        json!({"username": "ok", "password": "long-enough-1", "role": "root"}),
        json!({"username": "ok\u{0}", "password": "long-enough-1", "role": "viewer"}),
    ] {
        let response = app.post_json("/api/users", &app.admin, &body).await;
        let status = response.status().as_u16();
        assert!(status == 422 || status == 400, "{body}: {status}");
        assert_error(response, status).await;
    }
    app.add_user("bob", "bob-password-1", Role::Viewer).await;
    let empty = app
        .send_json(Method::PATCH, "/api/users/bob", &app.admin, &json!({}))
        .await;
    assert_error(empty, 422).await;
    let missing = app
        .send_json(
            Method::PATCH,
            "/api/users/nobody",
            &app.admin,
            &json!({"role": "viewer"}),
        )
        .await;
    assert_error(missing, 404).await;
}

/// A token's validity does not hang on clocks: one signed by an API process whose clock runs an
/// hour ahead (its `iat` after the change) is refused once the user's role changes, because it
/// carries the generation it was issued under; a login after the change works at once.
#[tokio::test]
async fn a_role_change_refuses_earlier_tokens_whatever_their_clock_said() {
    let app = spawn_app().await;
    app.add_user("clocky", "correct horse battery", Role::Operator)
        .await;
    let state = devicehub::registry::users::token_state(&app.pool, "clocky")
        .await
        .unwrap()
        .unwrap();
    let ahead = chrono::Utc::now().timestamp() + 3600;
    let claims = json!({"sub": "clocky", "role": "operator", "iat": ahead, "iat_ms": ahead * 1000,
                        "exp": ahead + 3600, "iss": "devicehub", "gen": state.generation});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.get("/api/devices", &token).await.status(), 200);
    let changed = app
        .send_json(
            Method::PATCH,
            "/api/users/clocky",
            &app.admin,
            &json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let body = assert_error(app.get("/api/devices", &token).await, 401).await;
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("role or password"),
        "{body}"
    );
    let fresh = app.log_in("clocky", "correct horse battery").await.0;
    assert_eq!(app.get("/api/devices", &fresh).await.status(), 200);
}

/// A logout ends its login: the access tokens it issued are refused too (not only its refresh
/// token), while another login of the same user goes on.
#[tokio::test]
async fn logout_refuses_the_logins_access_tokens_and_leaves_other_logins_alone() {
    let app = spawn_app().await;
    app.add_user("leaver", "correct horse battery", Role::Viewer)
        .await;
    let log_in = || app.log_in("leaver", "correct horse battery");
    let (laptop, laptop_refresh) = log_in().await;
    let (phone, _) = log_in().await;
    let out = app
        .client
        .post(app.url("/api/auth/logout"))
        .json(&json!({"refresh_token": laptop_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let body = assert_error(app.get("/api/devices", &laptop).await, 401).await;
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("logged out"),
        "{body}"
    );
    assert_eq!(app.get("/api/devices", &phone).await.status(), 200);
}

/// One login attempt of `username` from `local` (a loopback address of the test's choosing),
/// through a proxy naming `forwarded_for` if given; the status.
async fn attempt_from(
    app: &crate::harness::TestApp,
    local: std::net::IpAddr,
    forwarded_for: Option<&str>,
    (username, password): (&str, &str),
) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(local)
        .build()
        .unwrap();
    let mut request = client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": username, "password": password}));
    if let Some(client) = forwarded_for {
        request = request.header("X-Forwarded-For", client);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn bad_logins_from_rotating_loopback_addresses_count_as_one_client() {
    let mut settings = test_settings();
    // 127.0.0.1 is a reverse proxy; the guesser rotates through the rest of 127.0.0.0/8.
    settings.http.trusted_proxies = vec!["127.0.0.1".into()];
    let app = spawn_app_with(settings).await;
    app.add_user("target", "correct horse battery", Role::Admin)
        .await;
    let mut verified = 0;
    for i in 0..500u32 {
        let local = std::net::Ipv4Addr::new(127, 0, (i / 250) as u8 + 1, (i % 250) as u8 + 2);
        match attempt_from(&app, local.into(), None, ("target", "guess")).await {
            401 => verified += 1,
            429 => {}
            other => panic!("attempt {i}: {other}"),
        }
    }
    assert!(
        verified <= 10,
        "{verified} of 500 guesses were checked (at most auth.login_attempts_per_minute)"
    );
    // The owner, elsewhere (through the proxy), is not locked out by the guessing.
    let proxy = std::net::Ipv4Addr::LOCALHOST.into();
    let owner = ("target", "correct horse battery");
    assert_eq!(
        attempt_from(&app, proxy, Some("203.0.113.9"), owner).await,
        200
    );
}

#[tokio::test]
async fn eleven_bad_logins_through_a_proxy_lock_out_that_client_only() {
    let mut settings = test_settings();
    settings.http.trusted_proxies = vec!["127.0.0.0/8".into()];
    let app = spawn_app_with(settings).await;
    app.add_user("shared", "correct horse battery", Role::Viewer)
        .await;
    let proxy = std::net::Ipv4Addr::LOCALHOST.into();
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..11 {
            statuses
                .push(attempt_from(&app, proxy, Some("198.51.100.1"), ("shared", "guess")).await);
        }
        statuses
    };
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert_eq!(statuses[10], 429, "{statuses:?}");
    // Everyone else behind the same proxy logs in.
    let right = ("shared", "correct horse battery");
    for client in [
        "198.51.100.2",
        "2001:db8:1:2::7",
        "203.0.113.5, 198.51.100.3",
    ] {
        assert_eq!(
            attempt_from(&app, proxy, Some(client), right).await,
            200,
            "{client}"
        );
    }
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app().await;
    let local = std::net::Ipv4Addr::LOCALHOST.into();
    let mut limited = false;
    for i in 0..12 {
        let forged = format!("198.51.100.{i}");
        if attempt_from(&app, local, Some(&forged), ("nobody", "guess")).await == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "a forged X-Forwarded-For bought more attempts");
}
