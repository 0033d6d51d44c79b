//! Live updates for browsers: `POST /api/stream/ticket`, then `GET /api/stream?ticket=` as
//! Server-Sent Events (see `live::sse` for the events).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use super::{device_id, ApiState};
use crate::auth::{Auth, Viewer};
use crate::domain::{single_line, Invalid, MAX_DEVICE_TYPE_CHARS};
use crate::error::{ApiError, ErrorBody};
use crate::live::sse::{Client, Filter, Watcher};
use crate::live::{Kind, Refused};

/// Devices one stream may name.
const MAX_DEVICES: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTicket {
    /// Pass as `?ticket=` to `GET /api/stream`; `null` when auth is off (none is needed).
    pub ticket: Option<String>,
    /// Seconds the ticket opens streams for.
    pub expires_in: u64,
}

/// A ticket that opens live streams for a short while (viewer). A browser's `EventSource`
/// cannot send an Authorization header, and an access token in a URL ends up in logs and
/// histories: the ticket, which opens nothing but streams and lives seconds, goes there instead.
#[utoipa::path(post, operation_id = "stream_ticket", path = "/api/stream/ticket", tag = "stream",
    security(("bearer" = [])),
    responses(
        (status = 200, body = StreamTicket),
    ))]
pub async fn ticket(
    caller: Viewer,
    auth: web::Data<Arc<Auth>>,
    stores: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let ttl = stores.stream.ticket_ttl_secs;
    let ticket = match (auth.issuer(), &caller.caller.token) {
        (Some(issuer), Some(access)) => Some(issuer.issue_ticket(access, ttl)?),
        _ => None,
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(StreamTicket {
            ticket,
            expires_in: ttl,
        }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// From `POST /api/stream/ticket` (not needed when auth is off).
    pub ticket: Option<String>,
    /// Devices to hear about, comma-separated (at most 100). With `type`, devices of either.
    pub device_id: Option<String>,
    /// Devices of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub device_type: Option<String>,
    /// Comma-separated: `reading`, `status`, `alert`, `command`. Default: all but readings, and
    /// readings too when devices are named. Readings need devices named.
    pub kinds: Option<String>,
    /// Resume after this alert id, as the `Last-Event-ID` header does (for a new `EventSource`,
    /// which cannot set it).
    #[param(value_type = Option<i64>)]
    pub last_event_id: Option<String>,
}

/// Server-Sent Events: readings of the devices named, their connection status changes, new
/// alerts and command status changes (viewer, by ticket). Alerts carry their id as the event
/// id, so a client reconnecting with `Last-Event-ID` first gets the alerts it missed (at most
/// 500). A client that falls behind gets `event: lagged` with how many entries it skipped. The
/// stream ends (`event: end`) within a heartbeat of a logout of its login, a change of the
/// user's role or password, the user's deletion, or the expiry of the access token its ticket
/// was asked with: open it again with a new ticket.
#[utoipa::path(get, operation_id = "stream", path = "/api/stream", tag = "stream",
    params(StreamQuery, ("Last-Event-ID" = Option<i64>, Header, description = "The last alert id seen")),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "Events: readings, status, alert, command, lagged, heartbeat, end"),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody,
            description = "The user holds `stream.max_clients_per_user` streams already (`Retry-After`)"),
        (status = 503, body = ErrorBody, description = "`stream.max_clients` streams are open"),
    ))]
pub async fn stream(
    req: HttpRequest,
    query: web::Query<StreamQuery>,
    auth: web::Data<Arc<Auth>>,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let claims = auth.verify_ticket(query.ticket.as_deref())?;
    if let Some(claims) = &claims {
        auth.caller_of(claims, Some(&pool)).await?;
    }
    let filter = filter(&query)?;
    let header = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?"));
    let last_event_id = match header.or(query.last_event_id.as_deref()) {
        Some(raw) => Some(raw.trim().parse::<i64>().map_err(|_| {
            ApiError::invalid_parameter(Invalid::new(
                "last_event_id",
                "not an alert id (Last-Event-ID or last_event_id)",
            ))
        })?),
        None => None,
    };
    let user = claims.as_ref().map(|c| c.sub.as_str());
    let subscription =
        stores
            .live
            .subscribe(&filter.kinds, user)
            .map_err(|refused| match refused {
                Refused::Full => ApiError::Unavailable("stream (too many clients)"),
                Refused::UserFull(_) => ApiError::RateLimited {
                    retry_after_secs: stores.stream.heartbeat_secs,
                },
            })?;
    let watcher = Watcher {
        auth: auth.get_ref().clone(),
        claims,
    };
    let heartbeat = Duration::from_secs(stores.stream.heartbeat_secs);
    let client = Client::start(
        subscription,
        filter,
        (pool.get_ref().clone(), watcher),
        last_event_id,
        heartbeat,
    )
    .await?;
    let body = futures_util::stream::unfold(client, |mut client| async move {
        client
            .next()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), client))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies such as nginx would otherwise hold events back to fill their buffers.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

fn filter(query: &StreamQuery) -> Result<Filter, ApiError> {
    let mut devices = HashSet::new();
    for raw in query
        .device_id
        .iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        devices.insert(device_id(raw)?.as_str().to_owned());
    }
    if devices.len() > MAX_DEVICES {
        return Err(ApiError::invalid_parameter(Invalid::new(
            "device_id",
            format!("at most {MAX_DEVICES} devices per stream"),
        )));
    }
    let device_type = query
        .device_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    if let Some(t) = &device_type {
        // The rules of `GET /api/devices?type=`.
        if t.chars().count() > MAX_DEVICE_TYPE_CHARS {
            return Err(ApiError::invalid_parameter(Invalid::new(
                "type",
                format!("must be 1 to {MAX_DEVICE_TYPE_CHARS} characters long"),
            )));
        }
        single_line("type", t).map_err(ApiError::invalid_parameter)?;
    }
    let names_devices = !devices.is_empty() || device_type.is_some();
    let kinds: HashSet<Kind> = match query.kinds.as_deref().map(str::trim) {
        None | Some("") => Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::Reading || names_devices)
            .collect(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .map(|k| {
                Kind::parse(k).ok_or_else(|| {
                    ApiError::invalid_parameter(Invalid::new(
                        "kinds",
                        format!("{k:?} is none of reading, status, alert, command"),
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if kinds.contains(&Kind::Reading) && !names_devices {
        return Err(ApiError::invalid_parameter(Invalid::new(
            "kinds",
            "readings need devices: name them with device_id= or type=",
        )));
    }
    Ok(Filter::new(kinds, devices, device_type))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/stream").get(stream))
        .service(web::resource("/stream/ticket").post(ticket));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(stream, ticket), tags((name = "stream", description = "Live updates for browsers (Server-Sent Events)")))]
pub struct Doc;
