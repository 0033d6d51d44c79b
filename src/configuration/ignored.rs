//! Settings that would silently do nothing are named at start-up: a `DEVICEHUB__` variable that
//! is no setting (with the nearest one that is), and a setting of a part this process does not
//! run (with the role that runs it).

use std::collections::BTreeSet;

use super::{ProcessRole, Settings, DEFAULTS};

/// Every setting's environment variable name, `DEVICEHUB__SECTION__KEY`, from
/// `config/default.toml` (commented-out keys too: they are settings without a default).
fn known_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut section: Vec<String> = Vec::new();
    for line in DEFAULTS.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.split('.').map(str::to_uppercase).collect();
            continue;
        }
        let candidate = line
            .strip_prefix("# ")
            .or(line.strip_prefix('#'))
            .unwrap_or(line);
        let Some((key, _)) = candidate.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        let mut parts = vec!["DEVICEHUB".to_owned()];
        parts.extend(section.iter().cloned());
        parts.push(key.to_uppercase());
        names.insert(parts.join("__"));
    }
    names
}

/// Settings whose keys are free (a map): any variable under them is valid.
const MAPS: &[&str] = &["DEVICEHUB__MQTT__UNKNOWN_DEVICES_BY_PROTOCOL__"];

/// Which role uses a section's settings; sections every process reads are absent.
fn role_of(section: &str) -> Option<ProcessRole> {
    match section {
        "MIKROTIK" | "SHELLY" | "HIKVISION" | "NETWORK" => Some(ProcessRole::Pollers),
        "ANALYTICS" => Some(ProcessRole::Analytics),
        "COLLECTOR" | "REGISTRY" => Some(ProcessRole::Collector),
        "STREAM" => Some(ProcessRole::Api),
        _ => None,
    }
}

impl Settings {
    /// Warnings for `env` (the process's environment): variables that are no setting, and set
    /// settings of roles this process does not run.
    pub fn ignored(&self, env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        let known = known_variables();
        let mut warnings = Vec::new();
        for (name, value) in env {
            if !name.starts_with("DEVICEHUB__") {
                continue;
            }
            if !known.contains(&name) && !MAPS.iter().any(|m| name.starts_with(m)) {
                let nearest = known
                    .iter()
                    .min_by_key(|k| strsim::levenshtein(k, &name))
                    .filter(|k| strsim::levenshtein(k, &name) <= 4);
                warnings.push(match nearest {
                    Some(k) => format!("{name} is no setting and is ignored; did you mean {k}?"),
                    None => format!(
                        "{name} is no setting and is ignored (docs/configuration.md lists them)"
                    ),
                });
                continue;
            }
            let section = name.split("__").nth(1).unwrap_or_default();
            if let Some(role) = role_of(section) {
                if !value.trim().is_empty() && !self.runs(role) {
                    warnings.push(format!(
                        "{name} is set, but this process does not run the {} role that uses it \
                         (roles: {}); add it to DEVICEHUB__ROLES, or set it where that role runs",
                        role.as_str(),
                        self.roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ));
                }
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_misspelt_variable_is_named_with_the_setting_it_is_closest_to() {
        let settings = super::super::tests::defaults();
        let warnings = settings.ignored(env(&[
            ("DEVICEHUB__MQTT__CLIENTID", "x"),
            ("DEVICEHUB__MQTT__CLIENT_ID", "y"),
            ("DEVICEHUB__MQTT__CA_FILE", "/ca.crt"),
            ("DEVICEHUB__MQTT__UNKNOWN_DEVICES_BY_PROTOCOL__QS", "reject"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("did you mean DEVICEHUB__MQTT__CLIENT_ID"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_setting_of_a_role_not_running_here_names_the_role() {
        let settings = super::super::tests::defaults();
        assert_eq!(
            settings.roles,
            [ProcessRole::Api, ProcessRole::Collector],
            "the default roles"
        );
        let warnings = settings.ignored(env(&[
            ("DEVICEHUB__MIKROTIK__URL", "https://192.168.88.1/rest"),
            ("DEVICEHUB__SHELLY__HOSTS", "192.168.88.30"),
            ("DEVICEHUB__HIKVISION__HOSTS", ""),
            ("DEVICEHUB__COLLECTOR__FSYNC", "interval"),
        ]));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings.iter().all(|w| w.contains("pollers role")),
            "{warnings:?}"
        );
    }
}
