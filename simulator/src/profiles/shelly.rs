//! Shelly relays/meters. Gen2 (Pro 4PM, Pro 2PM, Plus Plug S): MQTT status notifications
//! (`{id}/status/switch:N`, `{id}/events/rpc` NotifyStatus, `{id}/online`) and an HTTP RPC server
//! answering `Shelly.GetStatus`, `Shelly.GetDeviceInfo`, `Mqtt.GetConfig`, `Switch.GetStatus`
//! and `Switch.Set`,
//! over `GET /rpc/{method}` and JSON-RPC `POST /rpc`. Gen1 (Shelly 2.5): HTTP only — `/shelly`,
//! `/status` (`relays`, `meters` with energy in watt-minutes, `tmp`) and `/relay/N?turn=on|off`.
//!
//! With a password the device asks for auth as real ones do: Gen2 answers 401 with a digest
//! challenge (RFC 7616, SHA-256, realm = its id, user `admin`), Gen1 with a basic one; `/shelly`
//! stays open, as on the devices.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use rumqttc::{LastWill, QoS};
use serde_json::{json, Map, Value};

use crate::link::{Link, LinkOptions};
use crate::physics::{daily, fnv1a, round, EnergyMeter, MeanReverting, Rng};
use crate::scenario::ShellyDevice;

struct Channel {
    output: bool,
    apower: f64,
    voltage: MeanReverting,
    current: f64,
    energy: EnergyMeter,
    temperature: MeanReverting,
    /// Rated load when on, in watts.
    load_w: f64,
}

pub struct ShellyState {
    pub device: ShellyDevice,
    booted: std::time::Instant,
    channels: Vec<Channel>,
    rng: Rng,
}

/// The MAC a Shelly id ends with (`shellypro4pm-a8032ab1c2d4` → `A8032AB1C2D4`), or one made
/// from the id.
pub fn shelly_mac(id: &str) -> String {
    let tail = id.rsplit('-').next().unwrap_or_default();
    if tail.len() == 12 && tail.bytes().all(|b| b.is_ascii_hexdigit()) {
        return tail.to_ascii_uppercase();
    }
    // Locally administered, like `mikrotik::mac_for`.
    format!(
        "{:012X}",
        fnv1a(id.as_bytes()) & 0x00FF_FFFF_FFFF | 0x0200_0000_0000
    )
}

impl ShellyState {
    pub fn new(device: ShellyDevice, seed: u64) -> Self {
        let mut rng = Rng::for_device(seed, &device.id);
        let channels = (0..device.model.channels())
            .map(|i| {
                let load = device.loads.get(usize::from(i)).map(String::as_str);
                let load_w = match load {
                    Some(l) if l.contains("heat") => 2000.0,
                    Some(l) if l.contains("light") => 60.0,
                    Some(l) if l.contains("boiler") => 1500.0,
                    _ => 150.0 + 400.0 * rng.uniform(),
                };
                Channel {
                    output: true,
                    apower: 0.0,
                    voltage: MeanReverting::new(230.0, 0.1, 0.3),
                    current: 0.0,
                    energy: EnergyMeter::default(),
                    temperature: MeanReverting::new(40.0, 0.01, 0.05),
                    load_w,
                }
            })
            .collect();
        Self {
            device,
            booted: std::time::Instant::now(),
            channels,
            rng,
        }
    }

    /// Advances the physics by `dt_s` seconds.
    pub fn step(&mut self, dt_s: f64) {
        let now = Utc::now();
        let evening = (daily(now, 20.0) + 1.0) / 2.0;
        for ch in &mut self.channels {
            let v = ch.voltage.step(&mut self.rng, 230.0, dt_s);
            let duty = 0.3 + 0.6 * evening;
            ch.apower = if ch.output {
                ch.load_w * (duty + 0.1 * self.rng.normal()).clamp(0.0, 1.0)
            } else {
                0.0
            };
            ch.current = ch.apower / v;
            ch.energy.add(ch.apower, dt_s);
            ch.temperature
                .step(&mut self.rng, 38.0 + ch.apower / 200.0, dt_s);
        }
    }

    fn switch_status(&self, i: usize) -> Value {
        let ch = &self.channels[i];
        json!({
            "id": i,
            "source": "init",
            "output": ch.output,
            "apower": round(ch.apower, 1),
            "voltage": round(ch.voltage.value, 1),
            "freq": 50.0,
            "current": round(ch.current, 3),
            "pf": 0.93,
            "aenergy": {"total": round(ch.energy.wh, 3), "by_minute": [0.0, 0.0, 0.0], "minute_ts": Utc::now().timestamp()},
            "temperature": {"tC": round(ch.temperature.value, 1), "tF": round(ch.temperature.value * 9.0 / 5.0 + 32.0, 1)},
        })
    }

    pub fn status(&self) -> Value {
        let mut status = Map::new();
        for i in 0..self.channels.len() {
            status.insert(format!("switch:{i}"), self.switch_status(i));
        }
        let now = Utc::now();
        status.insert(
            "sys".into(),
            json!({
                "mac": shelly_mac(&self.device.id),
                "restart_required": false,
                "time": now.format("%H:%M").to_string(),
                "unixtime": now.timestamp(),
                "uptime": self.booted.elapsed().as_secs(),
                "ram_size": 245_480, "ram_free": 141_012, "fs_size": 458_752, "fs_free": 139_264,
                "cfg_rev": 12, "available_updates": {},
            }),
        );
        status.insert(
            "wifi".into(),
            json!({"sta_ip": self.device.http.ip().to_string(), "status": "got ip", "ssid": "home", "rssi": -58}),
        );
        status.insert("cloud".into(), json!({"connected": false}));
        status.insert("mqtt".into(), json!({"connected": true}));
        Value::Object(status)
    }

    /// Gen1 `/shelly`.
    pub fn gen1_info(&self) -> Value {
        json!({
            "type": self.device.model.model_code(),
            "mac": shelly_mac(&self.device.id),
            "auth": self.device.password.is_some(),
            "fw": "20230913-112003/v1.14.0-gcb84623",
            "discoverable": false,
            "num_outputs": self.channels.len(),
            "num_meters": self.channels.len(),
        })
    }

    /// Gen1 `/status`: meters count energy in watt-minutes.
    pub fn gen1_status(&self) -> Value {
        let relays: Vec<Value> = self
            .channels
            .iter()
            .map(|ch| json!({"ison": ch.output, "has_timer": false, "overpower": false, "source": "http"}))
            .collect();
        let meters: Vec<Value> = self
            .channels
            .iter()
            .map(|ch| {
                json!({"power": round(ch.apower, 2), "overpower": 0.0, "is_valid": true,
                             "timestamp": Utc::now().timestamp(), "counters": [0.0, 0.0, 0.0],
                             "total": (ch.energy.wh * 60.0).round()})
            })
            .collect();
        let temperature = self
            .channels
            .iter()
            .map(|ch| ch.temperature.value)
            .fold(f64::MIN, f64::max);
        json!({
            "wifi_sta": {"connected": true, "ssid": "home", "ip": self.device.http.ip().to_string(), "rssi": -61},
            "time": Utc::now().format("%H:%M").to_string(),
            "unixtime": Utc::now().timestamp(),
            "mac": shelly_mac(&self.device.id),
            "relays": relays,
            "meters": meters,
            "temperature": round(temperature, 1),
            "overtemperature": false,
            "tmp": {"tC": round(temperature, 1), "tF": round(temperature * 9.0 / 5.0 + 32.0, 1), "is_valid": true},
            "uptime": self.booted.elapsed().as_secs(),
        })
    }

    /// Gen1 `/relay/N?turn=on|off|toggle`.
    pub fn gen1_relay(&mut self, i: usize, turn: Option<&str>) -> Result<Value, (u16, String)> {
        if i >= self.channels.len() {
            return Err((404, "Not found".into()));
        }
        match turn {
            None => {}
            Some("on") => self.channels[i].output = true,
            Some("off") => self.channels[i].output = false,
            Some("toggle") => self.channels[i].output = !self.channels[i].output,
            Some(_) => return Err((400, "Bad turn!".into())),
        }
        self.step(0.0);
        Ok(json!({"ison": self.channels[i].output, "has_timer": false, "source": "http"}))
    }

    pub fn device_info(&self) -> Value {
        json!({
            "name": self.device.location,
            "id": self.device.id,
            "mac": shelly_mac(&self.device.id),
            "slot": 0,
            "model": self.device.model.model_code(),
            "gen": 2,
            "fw_id": "20241011-114455/1.4.4-g6d2a586",
            "ver": "1.4.4",
            "app": self.device.model.app(),
            "auth_en": self.device.password.is_some(),
            "auth_domain": null,
        })
    }

    /// One RPC call: `Ok(result)` or `Err((code, message))` as Shelly answers them.
    pub fn call(&mut self, method: &str, params: &Value) -> Result<Value, (u16, String)> {
        let channel = |params: &Value| -> Result<usize, (u16, String)> {
            let id = match &params["id"] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or((400, "Missing required argument 'id'!".to_owned()))?;
            usize::try_from(id)
                .ok()
                .filter(|&i| i < self.channels.len())
                .ok_or((404, format!("No such component: switch:{id}")))
        };
        match method {
            "Shelly.GetStatus" => Ok(self.status()),
            "Shelly.GetDeviceInfo" => Ok(self.device_info()),
            // As Shelly's API documents it; status notifications when the device pushes.
            "Mqtt.GetConfig" => {
                let pushes = self.device.mqtt;
                Ok(json!({
                    "enable": pushes, "server": pushes.then_some("broker.lan:1883"),
                    "client_id": self.device.id, "user": null, "ssl_ca": null,
                    "topic_prefix": self.device.id, "rpc_ntf": pushes, "status_ntf": pushes,
                    "use_client_cert": false, "enable_rpc": true, "enable_control": true,
                }))
            }
            "Switch.GetStatus" => Ok(self.switch_status(channel(params)?)),
            "Switch.Set" => {
                let i = channel(params)?;
                let on = match &params["on"] {
                    Value::Bool(b) => *b,
                    Value::String(s) if s == "true" || s == "false" => s == "true",
                    _ => return Err((400, "Missing required argument 'on'!".to_owned())),
                };
                let was_on = self.channels[i].output;
                self.channels[i].output = on;
                self.step(0.0);
                Ok(json!({"was_on": was_on}))
            }
            other => Err((404, format!("No handler for {other}"))),
        }
    }
}

fn rpc_answer(result: Result<Value, (u16, String)>) -> HttpResponse {
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err((code, message)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(code)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .json(json!({"code": -(i32::from(code)), "message": message})),
    }
}

type Shared = web::Data<Arc<Mutex<ShellyState>>>;

/// A fixed nonce per emulator run: real devices rotate theirs, devicehub must cope with either.
static NONCE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{:x}", fnv1a(Utc::now().to_rfc3339().as_bytes())));

/// `None` when the request may pass; else the 401 the device answers.
fn challenge(state: &Shared, req: &HttpRequest) -> Option<HttpResponse> {
    let (id, password, generation) = {
        let s = state.lock().ok()?;
        (
            s.device.id.clone(),
            s.device.password.clone()?,
            s.device.model.generation(),
        )
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if generation == 1 {
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
        );
        return (header != expected).then(|| {
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Basic realm=\"Shelly\""))
                .body("401 Unauthorized")
        });
    }
    let valid = crate::digest::valid(req, &password, Some(&id), &NONCE);
    (!valid).then(|| {
        HttpResponse::Unauthorized()
            .insert_header((
                "WWW-Authenticate",
                format!(
                    "Digest qop=\"auth\", realm=\"{id}\", nonce=\"{}\", algorithm=SHA-256",
                    *NONCE
                ),
            ))
            .json(json!({"code": 401, "message": "Unauthorized"}))
    })
}

async fn gen1_shelly(state: Shared) -> HttpResponse {
    match state.lock() {
        Ok(s) => HttpResponse::Ok().json(s.gen1_info()),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn gen1_status(state: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = challenge(&state, &req) {
        return refused;
    }
    match state.lock() {
        Ok(s) => HttpResponse::Ok().json(s.gen1_status()),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn gen1_relay(state: Shared, channel: web::Path<usize>, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = challenge(&state, &req) {
        return refused;
    }
    let turn =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("turn").cloned());
    let result = match state.lock() {
        Ok(mut s) => s.gen1_relay(channel.into_inner(), turn.as_deref()),
        Err(_) => Err((500, "state poisoned".into())),
    };
    match result {
        Ok(v) => HttpResponse::Ok().json(v),
        Err((code, message)) => HttpResponse::build(
            actix_web::http::StatusCode::from_u16(code)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
        )
        .body(message),
    }
}

/// Gen2's `/shelly` (open, as on the devices).
async fn gen2_shelly(state: Shared) -> HttpResponse {
    match state.lock() {
        Ok(s) => HttpResponse::Ok().json(s.device_info()),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn get_rpc(state: Shared, method: web::Path<String>, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = challenge(&state, &req) {
        return refused;
    }
    // Query parameters are the call's params (`/rpc/Switch.Set?id=0&on=true`).
    let params: Value =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map(|q| {
                Value::Object(
                    q.into_inner()
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                )
            })
            .unwrap_or(Value::Null);
    let result = match state.lock() {
        Ok(mut s) => s.call(&method, &params),
        Err(_) => Err((500, "state poisoned".into())),
    };
    rpc_answer(result)
}

async fn post_rpc(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some(refused) = challenge(&state, &req) {
        return refused;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"code": -32700, "message": "Parse error"}));
    };
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let result = match state.lock() {
        Ok(mut s) => s.call(&method, &request["params"]),
        Err(_) => Err((500, "state poisoned".into())),
    };
    let src = state
        .lock()
        .map(|s| s.device.id.clone())
        .unwrap_or_default();
    match result {
        Ok(result) => HttpResponse::Ok().json(json!({"id": id, "src": src, "result": result})),
        Err((code, message)) => HttpResponse::Ok().json(
            json!({"id": id, "src": src, "error": {"code": -(i32::from(code)), "message": message}}),
        ),
    }
}

/// A JSON-RPC request received over MQTT: the answer and the topic it goes to (`{src}/rpc`).
fn mqtt_rpc(state: &Arc<Mutex<ShellyState>>, payload: &[u8]) -> Option<(String, Value)> {
    let request: Value = serde_json::from_slice(payload).ok()?;
    let src = request["src"].as_str()?.to_owned();
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let mut s = state.lock().ok()?;
    let me = s.device.id.clone();
    let answer = match s.call(&method, &request["params"]) {
        Ok(result) => json!({"id": request["id"], "src": me, "dst": src, "result": result}),
        Err((code, message)) => json!({"id": request["id"], "src": me, "dst": src,
                                       "error": {"code": -(i32::from(code)), "message": message}}),
    };
    Some((format!("{src}/rpc"), answer))
}

/// Serves the device's HTTP RPC API until the task is dropped.
pub fn serve_http(state: Arc<Mutex<ShellyState>>) -> anyhow::Result<actix_web::dev::Server> {
    let (addr, generation) = {
        let s = state.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        (s.device.http, s.device.model.generation())
    };
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        let app = App::new().app_data(data.clone());
        if generation == 1 {
            app.route("/shelly", web::get().to(gen1_shelly))
                .route("/status", web::get().to(gen1_status))
                .route("/relay/{channel}", web::get().to(gen1_relay))
        } else {
            app.route("/shelly", web::get().to(gen2_shelly))
                .route("/rpc", web::post().to(post_rpc))
                .route("/rpc/{method}", web::get().to(get_rpc))
        }
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .map_err(|e| anyhow::anyhow!("Shelly emulator cannot listen on {addr}: {e}"))?
    .run();
    Ok(server)
}

pub async fn run(device: ShellyDevice, brokers: Vec<String>, seed: u64) -> anyhow::Result<()> {
    let interval = Duration::from_secs(device.interval_s.max(1));
    let id = device.id.clone();
    let pushes = device.mqtt && device.model.generation() >= 2;
    let state = Arc::new(Mutex::new(ShellyState::new(device, seed)));
    let server = serve_http(state.clone())?;
    tokio::spawn(server);
    if !pushes {
        // HTTP only: the physics moves on, devicehub polls.
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            state
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .step(interval.as_secs_f64());
        }
    }
    let link = Link::connect(
        &brokers,
        LinkOptions {
            client_id: id.clone(),
            device_id: id.clone(),
            will: Some(LastWill::new(
                format!("{id}/online"),
                "false",
                QoS::AtLeastOnce,
                true,
            )),
            on_connect: Some((format!("{id}/online"), b"true".to_vec())),
            // RPC over MQTT: requests on `{id}/rpc`, answers on `{src}/rpc`.
            subscriptions: vec![format!("{id}/rpc")],
        },
    )
    .await?;
    let mut link = link;
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(request) = link.incoming.recv() => {
                if let Some((topic, answer)) = mqtt_rpc(&state, &request.payload) {
                    link.publish(&topic, false, answer.to_string()).await;
                }
                continue;
            }
        }
        let (switches, notify) = {
            let mut s = state.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            s.step(interval.as_secs_f64());
            let switches: Vec<(usize, Value)> = (0..s.channels.len())
                .map(|i| (i, s.switch_status(i)))
                .collect();
            let mut params = Map::new();
            params.insert(
                "ts".into(),
                json!(Utc::now().timestamp_millis() as f64 / 1000.0),
            );
            for (i, status) in &switches {
                params.insert(format!("switch:{i}"), status.clone());
            }
            (
                switches,
                json!({"src": id, "dst": format!("{id}/events"), "method": "NotifyStatus", "params": params}),
            )
        };
        for (i, status) in switches {
            link.publish(
                &format!("{id}/status/switch:{i}"),
                false,
                status.to_string(),
            )
            .await;
        }
        link.publish(&format!("{id}/events/rpc"), false, notify.to_string())
            .await;
    }
}
