use std::fmt::Write as _;

use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use super::Stores;

/// Counters in the Prometheus text format (unauthenticated, like every exporter; it carries no
/// device data beyond counts).
#[utoipa::path(get, operation_id = "prometheus_metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics(pool: web::Data<PgPool>, stores: web::Data<Stores>) -> HttpResponse {
    let mut out = String::new();
    if let Ok(stats) = crate::registry::stats::read(&pool).await {
        let _ = writeln!(out, "# TYPE devicehub_devices gauge");
        for s in &stats.device_by_status {
            let _ = writeln!(
                out,
                "devicehub_devices{{status=\"{}\"}} {}",
                s.status, s.count
            );
        }
        let _ = writeln!(
            out,
            "# TYPE devicehub_devices_online gauge\ndevicehub_devices_online {}",
            stats.online_devices
        );
        let _ = writeln!(
            out,
            "# TYPE devicehub_alerts_open gauge\ndevicehub_alerts_open {}",
            stats.unacknowledged_alerts
        );
    }
    if let Some(counters) = &stores.ingest {
        let s = counters.snapshot();
        for (name, value) in [
            (
                "devicehub_mqtt_messages_received_total",
                s.messages_received,
            ),
            (
                "devicehub_mqtt_messages_accepted_total",
                s.messages_accepted,
            ),
            (
                "devicehub_mqtt_duplicates_dropped_total",
                s.duplicates_dropped,
            ),
            ("devicehub_influxdb_points_written_total", s.points_written),
            (
                "devicehub_influxdb_write_errors_total",
                s.influx_write_errors,
            ),
            (
                "devicehub_archive_objects_written_total",
                s.archive_objects_written,
            ),
        ] {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {value}");
        }
        let _ = writeln!(out, "# TYPE devicehub_mqtt_dead_letters_total counter");
        for (reason, count) in &s.rejected {
            let _ = writeln!(
                out,
                "devicehub_mqtt_dead_letters_total{{reason=\"{reason}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# TYPE devicehub_journal_bytes gauge\ndevicehub_journal_bytes {}",
            s.journal_bytes
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
