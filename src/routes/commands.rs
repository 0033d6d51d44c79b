use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;

use super::{device_id, paged, ApiState};
use crate::auth::{Operator, Viewer};
use crate::domain::{CommandRequest, NewCommand, Page};
use crate::error::{ApiError, ErrorBody};
use crate::registry::commands::{self, Command};

/// Sends a command to the device over MQTT (operator). 201 when handed to the broker, 202 when
/// the broker is down and the command waits in the queue.
#[utoipa::path(post, operation_id = "send_command", path = "/api/devices/{device_id}/commands", tag = "commands",
    params(("device_id" = String, Path)), request_body = NewCommand, security(("bearer" = [])),
    responses(
        (status = 201, description = "Published to iot/{device_id}/command", body = Command),
        (status = 202, description = "Broker unreachable: queued, sent on reconnect", body = Command),
        (status = 403, body = ErrorBody),
    ))]
pub async fn create(
    caller: Operator,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
    path: web::Path<String>,
    body: super::Body<NewCommand>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let request = CommandRequest::try_from(body.into_inner().0).map_err(ApiError::invalid_body)?;
    let queued = commands::create(&pool, &id, &request, &caller.caller.username).await?;
    let sent = stores.outbox.send(&queued).await?;
    let command = commands::find(&pool, queued.cmd_id).await?;
    tracing::info!(device_id = %id, cmd_id = %queued.cmd_id, cmd = queued.cmd, sent, "command");
    Ok(if sent {
        HttpResponse::Created()
    } else {
        HttpResponse::Accepted()
    }
    .json(command))
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
    ))]
pub async fn list(
    req: HttpRequest,
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    query: web::Query<CommandQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let page = Page::parse(query.limit, query.offset).map_err(ApiError::invalid_parameter)?;
    Ok(paged(&req, page, commands::list(&pool, &id, page).await?))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/devices/{device_id}/commands")
            .get(list)
            .post(create),
    );
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create), tags((name = "commands", description = "Commands to devices over MQTT")))]
pub struct Doc;
