//! What JWT front ends need from the API: refresh tokens that rotate (a reused one revokes its
//! login), logout, who am I, and CORS for configured origins only.

use devicehub::domain::Role;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app, spawn_app_with, test_settings, TestApp};

const PASSWORD: &str = "correct horse battery";

async fn login(app: &TestApp, username: &str) -> Value {
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("devicehub_refresh="))
        .expect("a devicehub_refresh cookie")
}

#[tokio::test]
async fn login_gives_a_short_access_token_and_a_refresh_token_that_rotates() {
    let app = spawn_app().await;
    app.add_user("fe", PASSWORD, Role::Operator).await;
    let first = login(&app, "fe").await;
    assert_eq!(first["expires_in"], 900, "access tokens are short-lived");
    assert_eq!(first["refresh_expires_in"], 2_592_000);
    let token = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);

    let response = refresh(&app, &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.unwrap();
    let next = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, token, "each refresh issues a new refresh token");
    let access = second["access_token"].as_str().unwrap();
    let me = app.get("/api/auth/me", access).await;
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.json::<Value>().await.unwrap(),
        json!({"username": "fe", "role": "operator"})
    );
    // The new one works in turn.
    assert_eq!(refresh(&app, &next).await.status(), 200);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_login_and_only_that() {
    let mut settings = test_settings();
    // A reuse after the grace (10 s by default; 1 s here, to wait less).
    settings.auth.refresh_reuse_grace_s = 1;
    let app = spawn_app_with(settings).await;
    app.add_user("victim", PASSWORD, Role::Viewer).await;
    let stolen = login(&app, "victim").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_login = login(&app, "victim").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The user refreshes; later the thief replays the old token.
    let users_next: Value = refresh(&app, &stolen).await.json().await.unwrap();
    let users_next = users_next["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let body = assert_error(refresh(&app, &stolen).await, 401).await;
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    // The family is revoked: the user's current token too.
    assert_error(refresh(&app, &users_next).await, 401).await;
    // Another login (another device) is not touched.
    assert_eq!(refresh(&app, &other_login).await.status(), 200);
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_both_succeed_with_one_successor() {
    let app = spawn_app().await;
    app.add_user("tabs", PASSWORD, Role::Viewer).await;
    let token = login(&app, "tabs").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two tabs woke with the same cookie and refresh at the same moment.
    let (a, b) = tokio::join!(refresh(&app, &token), refresh(&app, &token));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(
        a["refresh_token"], b["refresh_token"],
        "one successor for both"
    );
    for answer in [&a, &b] {
        let me = app
            .get("/api/auth/me", answer["access_token"].as_str().unwrap())
            .await;
        assert_eq!(me.status(), 200);
    }
    // The login lives on: the successor rotates in turn.
    let next = a["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, next).await.status(), 200);
}

#[tokio::test]
async fn logout_revokes_the_login_and_clears_the_cookie() {
    let app = spawn_app().await;
    app.add_user("leaver", PASSWORD, Role::Viewer).await;
    let token = login(&app, "leaver").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .client
        .post(app.url("/api/auth/logout"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = set_cookie(response.headers());
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert_error(refresh(&app, &token).await, 401).await;
    // Logging out again, or with nothing, is no error.
    let again = app
        .client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn browsers_refresh_with_the_httponly_cookie() {
    let app = spawn_app().await;
    app.add_user("browser", PASSWORD, Role::Viewer).await;
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "browser", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(response.headers());
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/auth"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let response = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated = set_cookie(response.headers());
    assert_ne!(rotated.split(';').next().unwrap(), pair);
    // Behind a TLS-terminating proxy the cookie is Secure.
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "browser", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(response.headers()).contains("Secure"));
    // No token at all.
    let body = assert_error(
        app.client
            .post(app.url("/api/auth/refresh"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert!(body["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("no refresh token"));
}

#[tokio::test]
async fn a_change_of_role_or_password_revokes_refresh_tokens_and_deleting_the_user_too() {
    let app = spawn_app().await;
    app.add_user("changed", PASSWORD, Role::Viewer).await;
    app.add_user("deleted", PASSWORD, Role::Viewer).await;
    let changed = login(&app, "changed").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = login(&app, "deleted").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .send_json(
            reqwest::Method::PATCH,
            "/api/users/changed",
            &app.admin,
            &json!({"role": "operator"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_error(refresh(&app, &changed).await, 401).await;
    let response = app
        .request(
            reqwest::Method::DELETE,
            "/api/users/deleted",
            Some(&app.admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_error(refresh(&app, &deleted).await, 401).await;
}

#[tokio::test]
async fn me_needs_a_token() {
    let app = spawn_app().await;
    let body = assert_error(
        app.client
            .get(app.url("/api/auth/me"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(body["details"]["reason"], "missing Authorization header");
    let me: Value = app
        .get("/api/auth/me", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({"username": "test-viewer", "role": "viewer"}));
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/api/devices"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_admits_the_listed_origins_only() {
    let mut settings = test_settings();
    settings.http.cors_origins = vec!["https://console.example".into()];
    let app = spawn_app_with(settings).await;

    let allowed = preflight(&app, "https://console.example").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://console.example"
    );
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );

    let refused = preflight(&app, "https://evil.example").await;
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));

    // An actual request from the listed origin gets the headers a page may read.
    let response = app
        .client
        .get(app.url("/api/devices"))
        .bearer_auth(&app.viewer)
        .header("origin", "https://console.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://console.example"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("x-total-count"),
        "{exposed}"
    );
    // Another origin's request is served (it may be the API's own page, or no browser at all),
    // without the headers that would let a foreign page read it.
    let response = app
        .client
        .get(app.url("/api/devices"))
        .bearer_auth(&app.viewer)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn without_origins_no_cors_headers_are_sent() {
    let app = spawn_app().await;
    let response = preflight(&app, "https://console.example").await;
    assert!(!response
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[test]
fn settings_refuse_a_wildcard_or_a_path_as_a_cors_origin() {
    for origin in [
        "*",
        "https://console.example/app",
        "console.example",
        "ftp://x.example",
    ] {
        let mut settings = test_settings();
        settings.http.cors_origins = vec![origin.into()];
        let error = settings.check().unwrap_err().to_string();
        assert!(error.contains("http.cors_origins"), "{origin}: {error}");
    }
    let mut settings = test_settings();
    settings.http.cors_origins = vec!["http://localhost:5173".into()];
    settings.check().unwrap();
}

/// The `rel`s of a `Link` header and their targets.
fn link_rels(response: &reqwest::Response) -> std::collections::BTreeMap<String, String> {
    let header = response.headers()["link"].to_str().unwrap();
    header
        .split(", ")
        .map(|part| {
            let (target, rel) = part.split_once("; rel=").unwrap();
            (
                rel.trim_matches('"').to_owned(),
                target.trim_matches(['<', '>']).to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lists_report_their_total_and_link_the_pages_a_table_needs() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.register_with(
            json!({"device_id": format!("pg-{i}"), "device_name": "P", "device_type": "plug"}),
        )
        .await;
    }
    app.register_with(json!({"device_id": "other", "device_name": "O", "device_type": "meter"}))
        .await;
    let response = app
        .get("/api/devices?type=plug&limit=3&offset=3", &app.viewer)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-total-count"], "7");
    let links = link_rels(&response);
    assert_eq!(links["first"], "/api/devices?type=plug&limit=3&offset=0");
    assert_eq!(links["prev"], "/api/devices?type=plug&limit=3&offset=0");
    assert_eq!(links["next"], "/api/devices?type=plug&limit=3&offset=6");
    assert_eq!(links["last"], "/api/devices?type=plug&limit=3&offset=6");
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.len(), 3, "the body stays a plain array");
    // Following next reaches the last page, which has no next.
    let last = app.get(&links["next"], &app.viewer).await;
    assert_eq!(last.headers()["x-total-count"], "7");
    let last_links = link_rels(&last);
    assert!(!last_links.contains_key("next"));
    assert_eq!(last.json::<Vec<Value>>().await.unwrap().len(), 1);

    // Alerts, per device and across devices, count what the filter matches.
    for severity in ["critical", "critical", "info"] {
        app.raise_alert("pg-1", severity).await;
    }
    let response = app
        .get("/api/alerts?severity=critical&limit=1", &app.viewer)
        .await;
    assert_eq!(response.headers()["x-total-count"], "2");
    assert_eq!(
        link_rels(&response)["next"],
        "/api/alerts?severity=critical&limit=1&offset=1"
    );
    let response = app.get("/api/devices/pg-1/alerts", &app.viewer).await;
    assert_eq!(response.headers()["x-total-count"], "3");
    assert!(!link_rels(&response).contains_key("next"));
    // Empty lists say 0.
    for path in [
        "/api/devices/pg-2/events",
        "/api/devices/pg-2/commands",
        "/api/quarantine",
    ] {
        let response = app.get(path, &app.viewer).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-total-count"], "0", "{path}");
    }
}

#[tokio::test]
async fn bad_refresh_and_logout_bodies_are_400_and_huge_offsets_page_safely() {
    let app = spawn_app().await;
    for path in ["/api/auth/refresh", "/api/auth/logout"] {
        for body in [r#"{"refresh_token": 5}"#, "not json", r#"{"other": "x"}"#] {
            let response = app
                .client
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_error(response, 400).await;
        }
    }
    app.register("only").await;
    let response = app
        .get(
            &format!("/api/devices?limit=1&offset={}", i64::MAX),
            &app.viewer,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-total-count"], "1");
    let links = link_rels(&response);
    assert_eq!(links["prev"], "/api/devices?limit=1&offset=0");
    assert!(!links.contains_key("next"));
}
