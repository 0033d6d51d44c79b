use secrecy::SecretString;

use super::*;

pub(super) fn defaults() -> Settings {
    config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap()
}

#[test]
fn auth_without_secret_is_refused() {
    let settings = defaults();
    assert!(matches!(
        settings.check(),
        Err(SettingsError::WeakJwtSecret)
    ));
}

#[test]
fn short_secret_is_refused_and_long_one_accepted() {
    let mut settings = defaults();
    settings.auth.jwt_secret = Some(SecretString::from("too-short"));
    assert!(matches!(
        settings.check(),
        Err(SettingsError::WeakJwtSecret)
    ));
    settings.auth.jwt_secret = Some(SecretString::from("x".repeat(32)));
    assert!(settings.check().is_ok());
}

#[test]
fn influx_bodies_are_gzipped_unless_the_server_is_on_this_machine() {
    let mut influx = defaults().influxdb;
    assert_eq!(influx.compression, InfluxCompression::Auto);
    for (url, gzip) in [
        ("http://127.0.0.1:8086", false),
        ("http://localhost:8086", false),
        ("http://[::1]:8086", false),
        ("https://influx.example.com", true),
        ("http://10.0.0.5:8086", true),
    ] {
        influx.url = url.into();
        assert_eq!(influx.gzip(), gzip, "{url}");
    }
    influx.compression = InfluxCompression::Gzip;
    influx.url = "http://127.0.0.1:8086".into();
    assert!(influx.gzip());
    influx.compression = InfluxCompression::None;
    influx.url = "https://influx.example.com".into();
    assert!(!influx.gzip());
}

#[test]
fn the_development_secret_is_refused_off_loopback() {
    let mut settings = defaults();
    settings.auth.jwt_secret = Some(SecretString::from(DEV_JWT_SECRETS[0]));
    settings.http.bind = "0.0.0.0:8080".parse().unwrap();
    let refused = settings.check().unwrap_err().to_string();
    assert!(refused.contains("development secret"), "{refused}");
    settings.http.bind = "127.0.0.1:8080".parse().unwrap();
    assert!(settings.check().is_ok());
}

#[test]
fn auth_off_needs_no_secret() {
    let mut settings = defaults();
    settings.auth.enabled = false;
    assert!(settings.check().is_ok());
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let mut settings = defaults();
    settings.auth.jwt_secret = Some(SecretString::from("s3cr3t-value-".repeat(4)));
    settings.database.url = SecretString::from("postgres://u:hunter2@db/x");
    let printed = format!("{settings:?}");
    assert!(!printed.contains("s3cr3t"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn s3_needs_keys_and_refuses_well_known_ones_off_this_machine() {
    let mut settings = defaults();
    settings.auth.enabled = false;
    settings.archive.backend = ArchiveBackend::S3;
    assert!(settings.check().is_err(), "no keys");
    settings.s3.access_key = Some(SecretString::from("minioadmin"));
    settings.s3.secret_key = Some(SecretString::from("minioadmin"));
    settings.s3.endpoint = Some("http://127.0.0.1:9000".into());
    assert!(settings.check().is_ok(), "dev keys on loopback");
    settings.s3.endpoint = Some("http://minio.lan:9000".into());
    let refused = settings.check().unwrap_err().to_string();
    assert!(refused.contains("well-known"), "{refused}");
    settings.s3.access_key = Some(SecretString::from("AKIA-real-key"));
    settings.s3.secret_key = Some(SecretString::from("a-real-secret-of-some-length"));
    assert!(settings.check().is_ok());
    settings.s3.endpoint = Some("ftp://minio.lan".into());
    assert!(settings.check().is_err(), "not http(s)");
}

#[test]
fn list_settings_come_comma_separated_from_the_environment() {
    let env = [
        ("DEVICEHUB__ROLES", "api,pollers"),
        (
            "DEVICEHUB__SHELLY__HOSTS",
            "192.168.88.30,192.168.88.31:8080",
        ),
        ("DEVICEHUB__HIKVISION__HOSTS", "192.168.88.40"),
        ("DEVICEHUB__SHELLY__PORT", "8081"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = Settings::load_with(None, Some(env)).unwrap();
    assert_eq!(settings.roles, [ProcessRole::Api, ProcessRole::Pollers]);
    assert_eq!(
        settings.shelly.hosts,
        ["192.168.88.30", "192.168.88.31:8080"]
    );
    assert_eq!(settings.hikvision.hosts, ["192.168.88.40"]);
    assert_eq!(settings.shelly.port, 8081);
}

#[test]
fn hosts_are_trimmed_and_empty_entries_dropped_once_at_load() {
    let env = [
        (
            "DEVICEHUB__SHELLY__HOSTS",
            " 192.168.88.30 ,,192.168.88.31:8080,",
        ),
        ("DEVICEHUB__HIKVISION__HOSTS", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let settings = Settings::load_with(None, Some(env)).unwrap();
    assert_eq!(
        settings.shelly.hosts,
        ["192.168.88.30", "192.168.88.31:8080"]
    );
    assert!(settings.hikvision.hosts.is_empty());
}

#[test]
fn configured_poller_hosts_need_the_collector_in_the_same_process() {
    let mut settings = defaults();
    settings.auth.jwt_secret = Some(SecretString::from("x".repeat(32)));
    settings.roles = vec![ProcessRole::Api, ProcessRole::Pollers];
    settings.shelly.hosts = vec!["192.168.88.30".into()];
    let refused = settings.check().unwrap_err().to_string();
    assert!(refused.contains("shelly.hosts"), "{refused}");
    settings.roles.push(ProcessRole::Collector);
    assert!(settings.check().is_ok());
    settings.roles = vec![ProcessRole::Api, ProcessRole::Pollers];
    settings.shelly.hosts.clear();
    assert!(
        settings.check().is_ok(),
        "the Mikrotik poller alone needs no collector"
    );
}

#[test]
fn published_example_credentials_are_refused_unless_on_this_machine() {
    let mut settings = defaults();
    settings.auth.jwt_secret = Some(SecretString::from(
        "a-real-secret-of-forty-bytes-0123456789",
    ));
    settings.http.bind = "0.0.0.0:8080".parse().unwrap();
    assert!(settings.check().is_ok());
    // .env.example's InfluxDB token against a remote InfluxDB: refused, naming the setting.
    settings.influxdb.url = "http://influxdb:8086".into();
    settings.influxdb.token = Some(SecretString::from("dev-only-influxdb-admin-token"));
    let refused = settings.check().unwrap_err().to_string();
    assert!(refused.contains("influxdb.token"), "{refused}");
    // On this machine it is a developer's setup.
    settings.influxdb.url = "http://127.0.0.1:8086".into();
    assert!(settings.check().is_ok());
    // A broker password in the URL, percent-encoded or not.
    settings.mqtt.url =
        SecretString::from("mqtts://devicehub:devOnlyBrokerPassword0123@mosquitto:8883");
    let refused = settings.check().unwrap_err().to_string();
    assert!(refused.contains("mqtt.url"), "{refused}");
    settings.mqtt.url = SecretString::from("mqtts://devicehub:my%2Down@mosquitto:8883");
    assert!(settings.check().is_ok());
    // Everything is allowed when the API itself is loopback only...
    settings.mqtt.url =
        SecretString::from("mqtts://devicehub:devOnlyBrokerPassword0123@mosquitto:8883");
    settings.http.bind = "127.0.0.1:8080".parse().unwrap();
    assert!(settings.check().is_ok());
    // ...but a template's placeholder, never.
    settings.auth.jwt_secret = Some(SecretString::from(
        "<at least 32 random bytes, e.g. openssl rand -base64 48>",
    ));
    let refused = settings.check().unwrap_err().to_string();
    assert!(refused.contains("placeholder"), "{refused}");
}
