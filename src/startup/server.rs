//! The HTTP server: the whole API in a process with the `api` role, else only the probes and
//! `/metrics`; the middleware every answer passes; CORS.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::auth::Auth;
use crate::configuration::Settings;
use crate::error::{json_error, json_error_page, path_error, query_error};
use crate::routes::{self, ApiState, Probes};

/// The HTTP server: the whole API with `stores`, else only the probes and `/metrics`.
pub(super) fn serve(
    listener: TcpListener,
    pool: PgPool,
    (probes, stores): (Probes, Option<ApiState>),
    settings: &Settings,
) -> anyhow::Result<Server> {
    let pool = web::Data::new(pool);
    let probes = web::Data::new(probes);
    let stores = stores.map(web::Data::new);
    let auth = web::Data::new(Arc::new(Auth::from_settings(
        &settings.auth,
        settings.http.trusted_proxies()?,
    )));
    let lifetimes = web::Data::new(routes::auth::TokenLifetimes::from_settings(settings));
    let cors_origins = settings.http.cors_origins.clone();
    let limit = settings.http.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(json_error_page))
            .wrap(actix_web::middleware::from_fn(crate::access::observe))
            .wrap(cors(&cors_origins))
            .wrap(TracingLogger::default())
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(json_error(limit)),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(pool.clone())
            .app_data(auth.clone())
            .app_data(lifetimes.clone())
            .app_data(probes.clone())
            .configure(|cfg| match &stores {
                Some(stores) => {
                    cfg.app_data(stores.clone());
                    routes::configure(cfg);
                }
                None => routes::configure_probes(cfg),
            })
    })
    .listen(listener)?
    // devicehub's supervisor handles the signals, and stops the server in its turn.
    .disable_signals()
    .shutdown_timeout(settings.shutdown_grace_secs);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    Ok(server.run())
}

/// Serves until told to stop, then ends the live streams and lets other requests in flight
/// finish.
pub(super) async fn run_server(
    server: Server,
    live: crate::live::Hub,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown.cancelled() => {
            live.close();
            let (_, result) = tokio::join!(handle.stop(true), server);
            result?;
        }
    }
    Ok(())
}

/// CORS for the configured origins (none: browsers on other origins get no CORS headers and
/// their preflights are refused): credentials allowed (the refresh cookie), the API's methods and
/// headers, and the response headers a front end reads (request ids, totals for paging).
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::ACCEPT,
            actix_web::http::header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            crate::access::REQUEST_ID,
            actix_web::http::header::HeaderName::from_static("x-total-count"),
            actix_web::http::header::LINK,
        ])
        .supports_credentials()
        // Another origin's request passes without CORS headers (the browser then keeps the
        // answer from its page), so that same-origin pages, which send `Origin` too, and
        // clients that are not browsers are served as ever.
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}
