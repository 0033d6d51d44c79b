//! What the checks share: how a fix names a setting, and the fix of a TLS failure; and the
//! check of the settings themselves.

use super::Check;
use crate::configuration::Settings;

/// `mqtt.url` → `mqtt.url (DEVICEHUB__MQTT__URL)`: the setting and the variable that sets it.
pub(super) fn setting(name: &str) -> String {
    format!(
        "{name} (DEVICEHUB__{})",
        name.replace('.', "__").to_uppercase()
    )
}

/// The fix of a TLS failure of `section`'s server, when `detail` is one: a pinned certificate
/// that changed, or a certificate nothing trusts yet.
pub(super) fn tls_fix(detail: &str, section: &str, key: &str, url: &str) -> Option<String> {
    if detail.contains("does not trust") {
        Some(format!(
            "{} — only if the certificate changed on purpose (`devicehub tls fingerprint {url}` shows it)",
            setting(&format!("{section}.{key}"))
        ))
    } else if detail.contains("certificate") {
        Some(format!(
            "pin the server's own certificate: {} or {} (`devicehub tls fingerprint {url}`)",
            setting(&format!("{section}.ca_file")),
            setting(&format!("{section}.{key}"))
        ))
    } else {
        None
    }
}

/// `1 device`, `2 devices`.
pub(super) fn plural(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

pub(super) fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The settings themselves: refused ones, other roles' settings, unknown variables.
pub(super) fn settings(settings: &Settings, env: Vec<(String, String)>) -> Vec<Check> {
    if let Err(e) = settings.check() {
        return vec![Check::failed(
            "settings",
            e.to_string(),
            "change the setting named; `devicehub serve` refuses to start with it",
        )];
    }
    let warnings = settings.ignored(env);
    if warnings.is_empty() {
        let roles: Vec<&str> = settings.roles.iter().map(|r| r.as_str()).collect();
        return vec![Check::ok(
            "settings",
            format!(
                "roles {}; every setting made is used by them",
                roles.join(",")
            ),
        )];
    }
    warnings
        .into_iter()
        .map(|w| {
            let fix = match w.contains("is no setting") {
                true => "rename the variable as suggested, or remove it".to_owned(),
                false => format!(
                    "run the role named here ({}), or remove the setting",
                    setting("roles")
                ),
            };
            Check::warning("settings", w, fix)
        })
        .collect()
}
