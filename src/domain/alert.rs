use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::text::{multi_line_rule, single_line_rule};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

/// `POST /api/devices/{device_id}/alerts` body.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "alert_type": "high_temperature", "severity": "warning",
    "message": "Temperature exceeded threshold"
}))]
pub struct NewAlert {
    /// What happened, e.g. `high_temperature`, `sequence_gap`, `offline`.
    #[validate(length(min = 1, max = 64), custom(function = "single_line_rule"))]
    #[schema(min_length = 1, max_length = 64)]
    pub alert_type: String,
    pub severity: Severity,
    #[validate(length(max = 2000), custom(function = "multi_line_rule"))]
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub message: String,
}

/// Alert listing filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `true` for acknowledged alerts only, `false` for open ones only.
    pub acknowledged: Option<bool>,
    pub severity: Option<Severity>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}
