//! A HikVision camera: ISAPI over HTTP with digest auth (MD5, qop auth, as the cameras do) —
//! `GET /ISAPI/System/deviceInfo`, `GET /ISAPI/Streaming/channels/101/picture` (a JPEG) and
//! `GET /ISAPI/Event/notification/alertStream`, a `multipart/mixed` stream of
//! `EventNotificationAlert` parts: a `videoloss`/`inactive` heartbeat every `heartbeat_s`, and
//! motion bursts (`VMD` active once a second for three seconds, then inactive) every
//! `motion_every_s` or on `POST /sim/motion` (the simulator's own control, for tests and demos).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use tokio::sync::broadcast;

use crate::physics::fnv1a;
use crate::scenario::CameraDevice;

/// The picture every snapshot returns.
pub const PICTURE: &[u8] = include_bytes!("../../assets/camera.jpg");

/// The MAC of a camera: HikVision's prefix 44:19:B6 and three bytes from its serial.
pub fn camera_mac(serial: &str) -> String {
    let h = fnv1a(serial.as_bytes()).to_be_bytes();
    format!("44:19:B6:{:02X}:{:02X}:{:02X}", h[5], h[6], h[7])
}

struct Camera {
    device: CameraDevice,
    password: Option<String>,
    nonce: String,
    events: broadcast::Sender<web::Bytes>,
}

impl Camera {
    fn part(
        &self,
        event_type: &str,
        active: bool,
        post_count: u64,
        description: &str,
    ) -> web::Bytes {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>{ip}</ipAddress>
<portNo>{port}</portNo>
<protocol>HTTP</protocol>
<macAddress>{mac}</macAddress>
<channelID>1</channelID>
<dateTime>{time}</dateTime>
<activePostCount>{post_count}</activePostCount>
<eventType>{event_type}</eventType>
<eventState>{state}</eventState>
<eventDescription>{description}</eventDescription>
</EventNotificationAlert>
"#,
            ip = self.device.http.ip(),
            port = self.device.http.port(),
            mac = camera_mac(&self.device.serial).to_ascii_lowercase(),
            time = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            state = if active { "active" } else { "inactive" },
        );
        web::Bytes::from(format!(
            "--boundary\r\nContent-Type: application/xml; charset=\"UTF-8\"\r\nContent-Length: {}\r\n\r\n{xml}\r\n",
            xml.len()
        ))
    }

    /// `None` when the request carries the right digest; else the 401 with a challenge.
    fn challenge(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let password = self.password.as_ref()?;
        let valid = crate::digest::valid(req, password, None, &self.nonce);
        (!valid).then(|| {
            HttpResponse::Unauthorized()
                .insert_header((
                    "WWW-Authenticate",
                    format!(
                        "Digest qop=\"auth\", realm=\"IP Camera({})\", nonce=\"{}\", stale=\"FALSE\"",
                        &self.device.serial[self.device.serial.len().saturating_sub(8)..],
                        self.nonce
                    ),
                ))
                .content_type("application/xml")
                .body("<?xml version=\"1.0\" encoding=\"UTF-8\"?><userCheck><statusValue>401</statusValue><statusString>Unauthorized</statusString></userCheck>")
        })
    }

    /// A motion burst: active once a second for three seconds, then inactive.
    async fn motion(self: Arc<Self>) {
        for n in 1..=3 {
            let _ = self.events.send(self.part("VMD", true, n, "Motion alarm"));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let _ = self.events.send(self.part("VMD", false, 0, "Motion alarm"));
    }
}

type Shared = web::Data<Arc<Camera>>;

async fn device_info(camera: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = camera.challenge(&req) {
        return refused;
    }
    let d = &camera.device;
    HttpResponse::Ok()
        .content_type("application/xml")
        .body(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DeviceInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<deviceName>{name}</deviceName>
<deviceID>{id:08x}-0000-0000-0000-000000000000</deviceID>
<model>{model}</model>
<serialNumber>{serial}</serialNumber>
<macAddress>{mac}</macAddress>
<firmwareVersion>V5.7.3</firmwareVersion>
<firmwareReleasedDate>build 220112</firmwareReleasedDate>
<deviceType>IPCamera</deviceType>
</DeviceInfo>
"#,
            name = d.name,
            id = fnv1a(d.serial.as_bytes()) as u32,
            model = d.model,
            serial = d.serial,
            mac = camera_mac(&d.serial).to_ascii_lowercase(),
        ))
}

async fn picture(camera: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = camera.challenge(&req) {
        return refused;
    }
    HttpResponse::Ok().content_type("image/jpeg").body(PICTURE)
}

async fn alert_stream(camera: Shared, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = camera.challenge(&req) {
        return refused;
    }
    let rx = camera.events.subscribe();
    // The first heartbeat at once, as cameras send one on connect.
    let first = camera.part("videoloss", false, 0, "videoloss alarm");
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, std::convert::Infallible>(first), (None, rx)));
        }
        loop {
            match rx.recv().await {
                Ok(bytes) => return Some((Ok(bytes), (None, rx))),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    HttpResponse::Ok()
        .content_type("multipart/mixed; boundary=boundary")
        .streaming(stream)
}

async fn trigger(camera: Shared) -> HttpResponse {
    tokio::spawn(camera.get_ref().clone().motion());
    HttpResponse::Accepted().json(serde_json::json!({"motion": "started"}))
}

/// Serves the camera until the task is dropped: its HTTP server, heartbeats and motion bursts.
pub async fn run(device: CameraDevice) -> anyhow::Result<()> {
    let (events, _) = broadcast::channel(64);
    let camera = Arc::new(Camera {
        password: device.password(),
        nonce: format!(
            "{:016x}",
            fnv1a(format!("{}{}", device.serial, Utc::now()).as_bytes())
        ),
        device,
        events,
    });
    let addr = camera.device.http;
    let data = web::Data::new(camera.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/ISAPI/System/deviceInfo", web::get().to(device_info))
            .route(
                "/ISAPI/Streaming/channels/101/picture",
                web::get().to(picture),
            )
            .route(
                "/ISAPI/Event/notification/alertStream",
                web::get().to(alert_stream),
            )
            .route("/sim/motion", web::post().to(trigger))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .map_err(|e| anyhow::anyhow!("camera emulator cannot listen on {addr}: {e}"))?
    .run();
    tokio::spawn(server);
    let heartbeat = Duration::from_secs(camera.device.heartbeat_s.max(1));
    let motion_every = camera.device.motion_every_s;
    let mut beats = tokio::time::interval(heartbeat);
    let mut since_motion = Duration::ZERO;
    loop {
        beats.tick().await;
        let _ = camera
            .events
            .send(camera.part("videoloss", false, 0, "videoloss alarm"));
        since_motion += heartbeat;
        if motion_every > 0 && since_motion >= Duration::from_secs(motion_every) {
            since_motion = Duration::ZERO;
            tokio::spawn(camera.clone().motion());
        }
    }
}
