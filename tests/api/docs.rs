//! The documentation stands alone and stays true: links stay inside the repository, the
//! configuration reference names every setting of `config/default.toml` with its default, and the
//! lists the architecture page shows are the ones in the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The README and every page under `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

/// Markdown link targets outside code blocks.
fn links(text: &str) -> Vec<String> {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if !fenced {
            out.extend(link.captures_iter(line).map(|c| c[1].to_owned()));
        }
    }
    out
}

#[test]
fn every_link_of_the_readme_and_docs_stays_inside_the_repository() {
    let repository = root().canonicalize().unwrap();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if file.is_empty() {
                continue;
            }
            let resolved = page.parent().unwrap().join(file);
            let resolved = resolved
                .canonicalize()
                .unwrap_or_else(|_| panic!("{}: the link {target} leads nowhere", page.display()));
            assert!(
                resolved.starts_with(&repository),
                "{}: the link {target} leaves the repository",
                page.display()
            );
        }
    }
    assert!(
        read("README.md").lines().count() <= 250,
        "the README is the front door; the rest belongs under docs/"
    );
}

/// `config/default.toml` as dotted keys and values.
fn defaults() -> BTreeMap<String, Value> {
    fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let value: Value = config::Config::builder()
        .add_source(config::File::from_str(
            &read("config/default.toml"),
            config::FileFormat::Toml,
        ))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    let mut out = BTreeMap::new();
    flatten("", &value, &mut out);
    out
}

/// The reference's rows: every key a row names (`a.b`, then `.c` for `a.c`) with the row's
/// default cell.
fn documented() -> BTreeMap<String, String> {
    let code = regex::Regex::new(r"`([^`]+)`").unwrap();
    let mut out = BTreeMap::new();
    for line in read("docs/configuration.md").lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if !line.starts_with("| `") || cells.len() < 3 {
            continue;
        }
        let mut parent = String::new();
        for name in code.captures_iter(cells[0]).map(|c| c[1].to_owned()) {
            if name.starts_with("DEVICEHUB_") {
                continue;
            }
            let key = match name.strip_prefix('.') {
                Some(leaf) => format!("{parent}.{leaf}"),
                None => name,
            };
            parent = key
                .rsplit_once('.')
                .map(|(p, _)| p.to_owned())
                .unwrap_or_default();
            out.insert(key, cells[1].to_owned());
        }
    }
    out
}

fn shown(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Object(map) if map.is_empty() => Some("{}".into()),
        other => Some(other.to_string()),
    }
}

#[test]
fn the_configuration_reference_names_every_default_setting_with_its_value() {
    let documented = documented();
    for (key, value) in defaults() {
        let cell = documented
            .get(&key)
            .unwrap_or_else(|| panic!("docs/configuration.md has no row for `{key}`"));
        match shown(&value) {
            Some(v) => assert!(
                cell.contains(&format!("`{v}`")),
                "docs/configuration.md gives `{key}` the default {cell}, config/default.toml {v}"
            ),
            None => assert!(
                cell.contains("none") || cell.contains("empty"),
                "`{key}` is empty by default; docs/configuration.md says {cell}"
            ),
        }
    }
}

/// Which structs under `src/sinks/` implement `Sink` (the driver's test sink aside).
fn sink_types() -> BTreeSet<String> {
    let implementation =
        regex::Regex::new(r"impl (?:super::|crate::sinks::)?Sink for (\w+)").unwrap();
    let mut out = BTreeSet::new();
    let mut stack = vec![root().join("src/sinks")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with("driver_tests.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.extend(implementation.captures_iter(&text).map(|c| c[1].to_owned()));
            }
        }
    }
    out
}

/// The text from `start` to the first `);` after it.
fn invocation<'a>(text: &'a str, start: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start}"));
    let to = text[from..].find(");").unwrap() + from + 2;
    &text[from..to]
}

#[test]
fn every_sink_is_registered_and_the_architecture_page_shows_the_real_list() {
    let code = read("src/sinks/mod.rs");
    let list = invocation(&code, "registered_sinks!(\n");
    for sink in sink_types() {
        assert!(
            list.contains(&format!("::{sink},")),
            "{sink} implements Sink but is not in registered_sinks!"
        );
    }
    assert_eq!(
        devicehub::sinks::NAMES,
        ["influxdb", "archive", "registry"],
        "a sink's name is part of the API (metric labels, ?sink=): change it on purpose"
    );
    for page in ["README.md", "docs/architecture.md"] {
        let text = read(page);
        let shown: String = invocation(&text, "registered_sinks!(\n")
            .lines()
            .map(str::trim)
            .collect();
        let real: String = list.lines().map(str::trim).collect();
        assert_eq!(shown, real, "{page} shows another list of sinks");
    }
}

#[test]
fn every_resource_module_is_listed_and_the_architecture_page_shows_the_real_list() {
    let code = read("src/routes/mod.rs");
    let root_list = code
        .lines()
        .find(|l| l.starts_with("pub const ROOT"))
        .unwrap()
        .to_owned();
    let api_list = invocation(&code, "pub const API");
    for entry in std::fs::read_dir(root().join("src/routes")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("\npub fn routes(cfg: &mut web::ServiceConfig)") {
            continue;
        }
        let module = path.file_stem().unwrap().to_str().unwrap();
        let word = regex::Regex::new(&format!(r"[(\s,]{module}[,)]")).unwrap();
        assert!(
            word.is_match(&root_list) || word.is_match(api_list),
            "routes/{module}.rs has routes but is in neither ROOT nor API"
        );
    }
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for page in ["README.md", "docs/architecture.md"] {
        let text = flat(&read(page));
        assert!(
            text.contains(&flat(&root_list)),
            "{page} shows another ROOT"
        );
        assert!(
            text.contains(&flat(api_list)),
            "{page} shows another API list"
        );
    }
}

/// Every credential the repository publishes (`.env.example`, `secrets.env.example`, the
/// scripts' development defaults, the README's and docs' examples) is one devicehub refuses off
/// loopback (or a placeholder it refuses everywhere).
#[test]
fn every_published_credential_is_one_devicehub_refuses() {
    let mut files: Vec<PathBuf> = pages();
    files.push(root().join(".env.example"));
    files.push(root().join("deploy/k8s/secrets.env.example"));
    for entry in std::fs::read_dir(root().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            files.push(path);
        }
    }
    let mut seen = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            for (key, rest) in line
                .split_whitespace()
                .filter_map(|word| word.trim_start_matches("export").split_once('='))
            {
                let key = key.trim_start_matches(|c: char| !c.is_ascii_uppercase());
                let secret = ["PASSWORD", "TOKEN", "SECRET", "SECRET_KEY", "ACCESS_KEY"]
                    .iter()
                    .any(|s| key.ends_with(s));
                if !secret || key.is_empty() {
                    continue;
                }
                // `"${NAME:-default}"` gives its default; a bare value is the value.
                let value = rest.trim_matches('"');
                let value = value
                    .strip_prefix("${")
                    .and_then(|v| v.split_once(":-"))
                    .map_or(value, |(_, default)| default.trim_end_matches('}'));
                if value.is_empty() || value.contains('$') || value.starts_with('(') {
                    continue;
                }
                seen += 1;
                let value = if value.starts_with('<') {
                    line.split_once('=').map_or(value, |(_, v)| v)
                } else {
                    value
                };
                assert!(
                    devicehub::configuration::is_example(value),
                    "{}: {key}={value} is published but not in configuration::EXAMPLE_SECRETS",
                    path.display()
                );
            }
        }
    }
    assert!(
        seen >= 25,
        "only {seen} credentials found: the scan is broken"
    );
}
