//! `devicehub certs mqtt`: a private certificate authority and the broker's server certificate,
//! so that MQTT runs over TLS from the first start (docker compose and `scripts/run.sh` call it
//! before the broker starts). The CA's certificate is what devicehub (`mqtt.ca_file`), the
//! simulator and devices trust; its key stays next to it to sign again. Existing files are kept
//! unless `--force`: bring your own certificates by putting them there first.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files of a broker's TLS set, in one directory.
#[derive(Debug, Clone)]
pub struct BrokerCertificates {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl BrokerCertificates {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }

    fn all(&self) -> [&Path; 4] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
        ]
    }
}

/// Writes a CA and a server certificate for `hosts` (DNS names or IP addresses) into `dir`,
/// unless the set is there already (and not `force`). Returns the files and whether they were
/// written.
pub fn mqtt(
    dir: &Path,
    hosts: &[String],
    force: bool,
) -> anyhow::Result<(BrokerCertificates, bool)> {
    let files = BrokerCertificates::in_dir(dir);
    if !force && files.all().iter().all(|p| p.exists()) {
        return Ok((files, false));
    }
    anyhow::ensure!(
        !hosts.is_empty(),
        "name at least one --host the broker is reached by"
    );
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let year = chrono::Utc::now().year();

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "devicehub MQTT CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(hosts.to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, hosts[0].as_str());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.use_authority_key_identifier_extension = true;
    // Within the 825 days that clients such as Apple's accept for a server certificate.
    server.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    let server_cert = server.signed_by(&server_key, &Issuer::from_params(&ca, &ca_key))?;

    write(&files.ca_key, ca_key.serialize_pem().as_bytes(), 0o600)?;
    write(&files.ca_cert, ca_cert.pem().as_bytes(), 0o644)?;
    write(
        &files.server_key,
        server_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write(&files.server_cert, server_cert.pem().as_bytes(), 0o644)?;
    Ok((files, true))
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_written_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("devicehub-certs-{}", uuid::Uuid::new_v4()));
        let hosts = ["mosquitto".to_owned(), "127.0.0.1".to_owned()];
        let (files, written) = mqtt(&dir, &hosts, false).unwrap();
        assert!(written);
        let first = fs::read(&files.server_cert).unwrap();
        assert!(String::from_utf8_lossy(&first).starts_with("-----BEGIN CERTIFICATE-----"));
        let (_, again) = mqtt(&dir, &hosts, false).unwrap();
        assert!(!again, "kept");
        assert_eq!(fs::read(&files.server_cert).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&files.server_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }
}
