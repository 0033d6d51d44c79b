//! The registration helper: logs in to devicehub and registers the simulated devices (a device
//! that exists already is left as it is), and raises the alerts devices report.

use serde_json::{json, Value};

use crate::profiles::house::DeviceAlert;
use crate::scenario::ApiSection;

/// A device as registered: `POST /api/devices`.
#[derive(Debug, Clone)]
pub struct Registration {
    pub device_id: String,
    pub device_name: String,
    pub device_type: String,
    pub location: Option<String>,
    pub metadata: Value,
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    section: ApiSection,
    token: String,
}

impl Api {
    pub async fn login(section: &ApiSection) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        let base = section.url.trim_end_matches('/').to_owned();
        let mut api = Self {
            http,
            base,
            section: section.clone(),
            token: String::new(),
        };
        api.refresh().await?;
        Ok(api)
    }

    async fn refresh(&mut self) -> anyhow::Result<()> {
        let answer = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"username": self.section.username, "password": self.section.password()?}))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach devicehub at {}: {e}", self.base))?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "login as {} failed ({status}): {}",
            self.section.username,
            body["error"]
        );
        self.token = body["access_token"].as_str().unwrap_or_default().to_owned();
        Ok(())
    }

    /// Registers each device; returns how many were new (or completed from auto-registered).
    pub async fn register(&mut self, devices: &[Registration]) -> anyhow::Result<usize> {
        let mut created = 0;
        for d in devices {
            let mut body = json!({
                "device_id": d.device_id, "device_name": d.device_name,
                "device_type": d.device_type, "metadata": d.metadata,
            });
            if let Some(location) = &d.location {
                body["location"] = json!(location);
            }
            let status = self.post("/api/devices", &body).await?;
            match status {
                201 => created += 1,
                // Registered before: leave it as its owner set it, unless the collector
                // auto-registered it from its traffic, in which case this completes it.
                409 => {
                    let current: Value = self
                        .http
                        .get(format!("{}/api/devices/{}", self.base, d.device_id))
                        .bearer_auth(&self.token)
                        .send()
                        .await?
                        .json()
                        .await
                        .unwrap_or_default();
                    if current["status"] == "unregistered" {
                        let mut patch = body.clone();
                        if let Some(fields) = patch.as_object_mut() {
                            fields.remove("device_id");
                            fields.insert("status".into(), json!("active"));
                        }
                        let answer = self
                            .http
                            .put(format!("{}/api/devices/{}", self.base, d.device_id))
                            .bearer_auth(&self.token)
                            .json(&patch)
                            .send()
                            .await?;
                        anyhow::ensure!(
                            answer.status().is_success(),
                            "completing {} failed with {}",
                            d.device_id,
                            answer.status()
                        );
                        created += 1;
                    }
                }
                other => anyhow::bail!("registering {} failed with {other}", d.device_id),
            }
        }
        Ok(created)
    }

    pub async fn raise(&mut self, alert: &DeviceAlert) -> anyhow::Result<()> {
        let body = json!({"alert_type": alert.alert_type, "severity": alert.severity, "message": alert.message});
        let status = self
            .post(&format!("/api/devices/{}/alerts", alert.device_id), &body)
            .await?;
        anyhow::ensure!(status == 201, "raising an alert failed with {status}");
        Ok(())
    }

    async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<u16> {
        for _ in 0..2 {
            let answer = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await?;
            if answer.status() == 401 {
                self.refresh().await?;
                continue;
            }
            return Ok(answer.status().as_u16());
        }
        anyhow::bail!("devicehub keeps answering 401")
    }
}
