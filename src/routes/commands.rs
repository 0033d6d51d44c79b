use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{device_id, Stores};
use crate::auth::{Operator, Viewer};
use crate::domain::{bounded_json_object, DeviceId, Page};
use crate::error::{ApiError, ErrorBody};
use crate::registry::{devices, missing_device};

/// The commands devices understand.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
    UpdateConfig,
    StartOta,
    Reboot,
    FactoryReset,
    RequestStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cmd": "update_config", "params": {"send_interval_s": 10}}))]
pub struct NewCommand {
    pub cmd: CommandName,
    /// A JSON object of at most 16 KiB (default `{}`).
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Command {
    pub cmd_id: Uuid,
    pub device_id: String,
    pub cmd: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `queued` (broker down), `sent`, then the device's answer: `accepted`, `rejected`, `error`,
    /// `unsupported`.
    pub status: String,
    pub detail: Option<String>,
    pub ota_state: Option<String>,
    pub ota_progress: Option<i16>,
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "cmd_id, device_id, cmd, params, status, detail, ota_state, ota_progress, requested_by, created_at, sent_at, acked_at";

/// The wire form of a command on `iot/{device_id}/command`.
pub fn command_payload(
    cmd_id: Uuid,
    cmd: &str,
    params: &serde_json::Value,
    at: DateTime<Utc>,
) -> Vec<u8> {
    serde_json::json!({"v": 2, "cmd_id": cmd_id, "ts": at.to_rfc3339(), "cmd": cmd, "params": params}).to_string().into_bytes()
}

/// Publishes a stored command and marks it sent; false when the broker is not connected.
pub async fn send(
    pool: &PgPool,
    stores: &Stores,
    cmd_id: Uuid,
    device: &str,
    cmd: &str,
    params: &serde_json::Value,
) -> Result<bool, ApiError> {
    if !stores.publisher.is_connected() {
        return Ok(false);
    }
    let topic = format!("{}/{device}/command", stores.iot_prefix);
    if stores
        .publisher
        .publish(
            topic,
            command_payload(cmd_id, cmd, params, Utc::now()),
            false,
        )
        .is_err()
    {
        return Ok(false);
    }
    sqlx::query("UPDATE commands SET status = 'sent', sent_at = now() WHERE cmd_id = $1 AND status = 'queued'")
        .bind(cmd_id)
        .execute(pool)
        .await?;
    Ok(true)
}

/// Sends a command to the device over MQTT (operator). 201 when handed to the broker, 202 when
/// the broker is down and the command waits in the queue.
#[utoipa::path(post, operation_id = "send_command", path = "/api/devices/{device_id}/commands", tag = "commands",
    params(("device_id" = String, Path)), request_body = NewCommand, security(("bearer" = [])),
    responses(
        (status = 201, description = "Published to iot/{device_id}/command", body = Command),
        (status = 202, description = "Broker unreachable: queued, sent on reconnect", body = Command),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    caller: Operator,
    pool: web::Data<PgPool>,
    stores: web::Data<Stores>,
    path: web::Path<String>,
    body: web::Json<NewCommand>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let body = body.into_inner();
    let params = bounded_json_object(
        "params",
        body.params.unwrap_or_else(|| serde_json::json!({})),
        16 * 1024,
    )
    .map_err(ApiError::invalid_body)?;
    let cmd = serde_json::to_value(body.cmd)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let cmd_id = Uuid::new_v4();
    sqlx::query("INSERT INTO commands (cmd_id, device_id, cmd, params, requested_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(cmd_id)
        .bind(id.as_str())
        .bind(&cmd)
        .bind(&params)
        .bind(&caller.caller.username)
        .execute(pool.get_ref())
        .await
        .map_err(missing_device(id.as_str()))?;
    let sent = send(&pool, &stores, cmd_id, id.as_str(), &cmd, &params).await?;
    let command = find(&pool, cmd_id).await?;
    tracing::info!(device_id = %id, %cmd_id, cmd, sent, "command");
    Ok(if sent {
        HttpResponse::Created()
    } else {
        HttpResponse::Accepted()
    }
    .json(command))
}

async fn find(pool: &PgPool, cmd_id: Uuid) -> Result<Command, ApiError> {
    Ok(
        sqlx::query_as::<_, Command>(&format!("SELECT {COLUMNS} FROM commands WHERE cmd_id = $1"))
            .bind(cmd_id)
            .fetch_one(pool)
            .await?,
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CommandQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Commands sent to a device, newest first, with the device's answers.
#[utoipa::path(get, operation_id = "list_commands", path = "/api/devices/{device_id}/commands", tag = "commands",
    params(("device_id" = String, Path), CommandQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Command>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn list(
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    query: web::Query<CommandQuery>,
) -> Result<HttpResponse, ApiError> {
    let id: DeviceId = device_id(&path)?;
    let page = Page::parse(query.limit, query.offset).map_err(ApiError::invalid_parameter)?;
    devices::ensure_exists(&pool, &id).await?;
    let commands = sqlx::query_as::<_, Command>(&format!(
        "SELECT {COLUMNS} FROM commands WHERE device_id = $1 ORDER BY created_at DESC LIMIT $2 OFFSET $3"
    ))
    .bind(id.as_str())
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool.get_ref())
    .await?;
    Ok(HttpResponse::Ok().json(commands))
}

/// Sends queued commands once the broker is back (runs with the API).
pub async fn resend_queued(pool: PgPool, stores: Stores) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tick.tick().await;
        if !stores.publisher.is_connected() {
            continue;
        }
        let queued: Result<Vec<(Uuid, String, String, serde_json::Value)>, _> = sqlx::query_as(
            "SELECT cmd_id, device_id, cmd, params FROM commands WHERE status = 'queued' ORDER BY created_at LIMIT 500",
        )
        .fetch_all(&pool)
        .await;
        for (cmd_id, device, cmd, params) in queued.unwrap_or_default() {
            if let Err(e) = send(&pool, &stores, cmd_id, &device, &cmd, &params).await {
                tracing::warn!(error = %e, "cannot send a queued command");
                break;
            }
        }
    }
}
