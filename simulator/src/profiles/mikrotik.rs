//! A Mikrotik RouterOS REST emulator: `GET /rest/ip/dhcp-server/lease` with basic auth, listing
//! a DHCP lease for every simulated host in RouterOS's JSON (every value a string), and
//! `GET /rest/interface/wifi/registration-table` listing the hosts on the Wi-Fi. Over HTTPS
//! with a self-signed certificate (as a router out of the box) when the scenario names a
//! `tls_cert` file.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::physics::fnv1a;
use crate::scenario::MikrotikSection;

/// A host on the simulated LAN.
#[derive(Debug, Clone)]
pub struct Host {
    pub host_name: String,
    pub mac: String,
    pub address: String,
}

/// A locally administered MAC for a host name (stable across runs).
pub fn mac_for(name: &str) -> String {
    let bytes = (fnv1a(name.as_bytes()) & 0x00FF_FFFF_FFFF | 0x0200_0000_0000).to_be_bytes();
    colon_mac(&bytes[2..])
}

/// `A8032AB1C2D4` or six bytes → `A8:03:2A:B1:C2:D4`.
pub fn colon_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn leases(hosts: &[Host]) -> Value {
    Value::Array(
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({
                    ".id": format!("*{:X}", i + 1),
                    "address": h.address,
                    "mac-address": h.mac,
                    "client-id": format!("1:{}", h.mac.to_ascii_lowercase()),
                    "address-lists": "",
                    "server": "defconf",
                    "dhcp-option": "",
                    "status": "bound",
                    "expires-after": format!("{}m{}s", 5 + i % 5, (i * 7) % 60),
                    "last-seen": format!("{}s", 10 + (i * 13) % 50),
                    "active-address": h.address,
                    "active-mac-address": h.mac,
                    "active-client-id": format!("1:{}", h.mac.to_ascii_lowercase()),
                    "active-server": "defconf",
                    "host-name": h.host_name,
                    "radius": "false",
                    "dynamic": "true",
                    "blocked": "false",
                    "disabled": "false",
                })
            })
            .collect(),
    )
}

struct Router {
    username: String,
    password: String,
    hosts: Vec<Host>,
    wifi: Vec<String>,
}

/// The registration table of RouterOS's `wifi` package for the hosts named in `wifi`.
pub fn stations(hosts: &[Host], wifi: &[String]) -> Value {
    Value::Array(
        hosts
            .iter()
            .filter(|h| wifi.contains(&h.host_name))
            .enumerate()
            .map(|(i, h)| {
                json!({
                    ".id": format!("*{:X}", i + 1),
                    "interface": if i % 2 == 0 { "wifi1" } else { "wifi2" },
                    "ssid": "home",
                    "mac-address": h.mac,
                    "uptime": format!("{}h{}m", 1 + i, (i * 17) % 60),
                    "signal": format!("-{}", 48 + (i * 7) % 30),
                    "band": "5ghz-ax",
                    "authorized": "true",
                })
            })
            .collect(),
    )
}

async fn registration_table(router: web::Data<Router>, req: HttpRequest) -> HttpResponse {
    if !authorized(&router, &req) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"RouterOS\""))
            .json(json!({"error": 401, "message": "Unauthorized"}));
    }
    HttpResponse::Ok().json(stations(&router.hosts, &router.wifi))
}

fn authorized(router: &Router, req: &HttpRequest) -> bool {
    let Some(header) = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = header.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{}:{}", router.username, router.password).as_bytes()
}

async fn lease(router: web::Data<Router>, req: HttpRequest) -> HttpResponse {
    if !authorized(&router, &req) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"RouterOS\""))
            .json(json!({"error": 401, "message": "Unauthorized"}));
    }
    HttpResponse::Ok().json(leases(&router.hosts))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": 404, "message": "Not Found"}))
}

pub fn serve(
    section: &MikrotikSection,
    hosts: Vec<Host>,
) -> anyhow::Result<actix_web::dev::Server> {
    let router = web::Data::new(Router {
        username: section.username.clone(),
        password: section.password(),
        hosts,
        wifi: section.wifi_hosts.clone(),
    });
    let addr = section.http;
    let tls = match &section.tls_cert {
        Some(path) => Some(tls_config(path, &addr.ip().to_string())?),
        None => None,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(router.clone())
            .route("/rest/ip/dhcp-server/lease", web::get().to(lease))
            .route(
                "/rest/interface/wifi/registration-table",
                web::get().to(registration_table),
            )
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals();
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(addr, config),
        None => server.bind(addr),
    };
    Ok(server
        .map_err(|e| anyhow::anyhow!("Mikrotik emulator cannot listen on {addr}: {e}"))?
        .run())
}

/// The key file beside a certificate file.
pub fn key_path(cert: &std::path::Path) -> std::path::PathBuf {
    cert.with_extension("key")
}

/// Makes a self-signed certificate for `host` (and `localhost`) in `cert` and its key beside it,
/// unless they are there already. Returns whether it made them.
pub fn ensure_certificate(cert: &std::path::Path, host: &str) -> anyhow::Result<bool> {
    let key = key_path(cert);
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    if let Some(dir) = cert.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // As RouterOS makes one (`/certificate add` + `sign`, default key usage): self-signed and
    // marked CA:TRUE, which devicehub must pin rather than verify as a chain.
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let made = params.self_signed(&key_pair)?;
    std::fs::write(&key, key_pair.serialize_pem())?;
    std::fs::write(cert, made.pem())?;
    Ok(true)
}

fn tls_config(cert: &std::path::Path, host: &str) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    ensure_certificate(cert, host)?;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_path(cert))
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path(cert).display()))?;
    Ok(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?,
    )
}
