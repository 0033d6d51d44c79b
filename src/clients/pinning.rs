//! Trusting the certificates people have. A home router's or device's certificate is usually its
//! own, self-signed — and marked `CA:TRUE` (RouterOS's `/certificate sign` and
//! `openssl req -x509` both do), which rustls refuses as a server's own certificate. So a
//! certificate is *pinned*: `ca_file` holding the server's own certificate, or a
//! `fingerprint = "sha256:…"`, accepts exactly that certificate as presented (the handshake's
//! signature still verified with its key); its CA flag, dates and names then do not matter. A
//! `ca_file` with a real CA verifies a chain as before. A mismatch says, as SSH does for a
//! changed host key, which fingerprint was expected, which was presented, and what to change.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// A certificate's SHA-256 fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// `sha256:AB:CD:…`, `sha256:abcd…` or the bare hex digits (separators `:`, ` `, `-`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex: String = text
            .trim()
            .trim_start_matches("sha256:")
            .trim_start_matches("SHA256:")
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .filter_map(|i| hex.get(i..i + 2))
            .map(|pair| u8::from_str_radix(pair, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{text:?} is not a SHA-256 fingerprint (sha256:AB:CD:…)"))?;
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| format!("{text:?} is not a SHA-256 fingerprint (64 hex digits)"))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        write!(f, "sha256:{}", hex.join(":"))
    }
}

/// What a client trusts for one server: pinned certificates and, for a real CA in `ca_file`,
/// roots to verify a chain against.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pins: Vec<Fingerprint>,
    roots: Vec<CertificateDer<'static>>,
    /// The section that set this, for the error (`mikrotik`).
    setting: String,
    /// Its fingerprint setting's key: `fingerprint`, or `fingerprints` for a list of devices.
    key: &'static str,
}

impl Trust {
    /// From a `ca_file` (its certificates are pinned as themselves, and are roots for a chain)
    /// and a `fingerprint` setting; `None` when neither is set (the system's roots).
    pub fn from_settings(
        ca_file: Option<&Path>,
        fingerprint: Option<&str>,
        setting: &str,
    ) -> anyhow::Result<Option<Self>> {
        Self::pinning(ca_file, fingerprint.into_iter(), (setting, "fingerprint"))
    }

    /// For many devices of one kind (`shelly`, `hikvision`): `ca_file` may hold each one's
    /// certificate, and `fingerprints` lists theirs; a device presenting any of them is trusted.
    pub fn for_devices(
        ca_file: Option<&Path>,
        fingerprints: &[String],
        setting: &str,
    ) -> anyhow::Result<Option<Self>> {
        let pins = fingerprints.iter().map(String::as_str);
        Self::pinning(ca_file, pins, (setting, "fingerprints"))
    }

    fn pinning<'a>(
        ca_file: Option<&Path>,
        fingerprints: impl Iterator<Item = &'a str>,
        (setting, key): (&str, &'static str),
    ) -> anyhow::Result<Option<Self>> {
        let mut trust = Trust {
            setting: setting.to_owned(),
            key,
            ..Trust::default()
        };
        if let Some(path) = ca_file.filter(|p| !p.as_os_str().is_empty()) {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read {setting}'s ca_file {}", path.display()))?;
            for der in CertificateDer::pem_slice_iter(&pem) {
                let der = der.with_context(|| {
                    format!(
                        "{setting}'s ca_file {} holds no PEM certificate",
                        path.display()
                    )
                })?;
                trust.pins.push(Fingerprint::of(&der));
                trust.roots.push(der);
            }
            anyhow::ensure!(
                !trust.roots.is_empty(),
                "{setting}'s ca_file {} holds no PEM certificate",
                path.display()
            );
        }
        for text in fingerprints.filter(|f| !f.trim().is_empty()) {
            let pin =
                Fingerprint::parse(text).map_err(|e| anyhow::anyhow!("{setting}.{key}: {e}"))?;
            trust.pins.push(pin);
        }
        Ok((!trust.pins.is_empty()).then_some(trust))
    }

    /// A rustls client configuration that trusts this.
    pub fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        self.client_config_with(None)
    }

    /// [`Self::client_config`], presenting a client certificate chain and key when given.
    pub fn client_config_with(
        &self,
        identity: Option<(
            Vec<CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        )>,
    ) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = if self.roots.is_empty() {
            None
        } else {
            let mut store = rustls::RootCertStore::empty();
            // A certificate that is no usable root (a leaf) stays pinned only.
            let _ = store.add_parsable_certificates(self.roots.iter().cloned());
            (!store.is_empty())
                .then(|| {
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .ok()
                })
                .flatten()
        };
        let verifier = PinningVerifier {
            pins: self.pins.clone(),
            chain,
            provider: provider.clone(),
            setting: format!("{}.{}", self.setting, self.key),
            capture: None,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        Ok(match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        })
    }
}

#[derive(Debug)]
struct PinningVerifier {
    pins: Vec<Fingerprint>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    /// The fingerprint setting, for the error (`mikrotik.fingerprint`).
    setting: String,
    /// Inspecting (`devicehub tls fingerprint`): any certificate is accepted and what was
    /// presented kept here. The handshake's signature is checked all the same, so the server
    /// holds the key of what it showed.
    capture: Option<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(seen) = &self.capture {
            if let Ok(mut seen) = seen.lock() {
                *seen = std::iter::once(end_entity)
                    .chain(intermediates)
                    .map(|c| c.to_vec())
                    .collect();
            }
            return Ok(ServerCertVerified::assertion());
        }
        let presented = Fingerprint::of(end_entity);
        if self.pins.contains(&presented) {
            return Ok(ServerCertVerified::assertion());
        }
        if let Some(chain) = &self.chain {
            if let Ok(verified) =
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            {
                return Ok(verified);
            }
        }
        let expected: Vec<String> = self.pins.iter().map(ToString::to_string).collect();
        Err(rustls::Error::General(format!(
            "the server presented a certificate devicehub does not trust: expected {}, presented \
             {presented}. If the certificate changed on purpose, set {} = \"{presented}\" \
             (`devicehub tls fingerprint URL` shows it)",
            expected.join(" or "),
            self.setting
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a server presents, for `devicehub tls fingerprint URL`.
#[derive(Debug, Clone)]
pub struct Presented {
    pub fingerprint: Fingerprint,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub ca: bool,
    /// Certificates after the server's own in what it sent.
    pub chain_len: usize,
}

/// Connects to `host:port` and returns the certificate it presents, trusting nothing: the user
/// looks at it and decides (trust on first use is a step they take, never automatic).
pub fn inspect(host: &str, port: u16, timeout: std::time::Duration) -> anyhow::Result<Presented> {
    use std::net::ToSocketAddrs;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(PinningVerifier {
        pins: Vec::new(),
        chain: None,
        provider: provider.clone(),
        setting: String::new(),
        capture: Some(std::sync::Mutex::default()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .with_context(|| format!("{host} is no host name or address"))?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name)?;
    let address = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut socket = std::net::TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("cannot connect to {host}:{port}"))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .with_context(|| format!("no TLS handshake with {host}:{port}"))?;
    }
    let chain = capture
        .capture
        .as_ref()
        .context("inspecting")?
        .lock()
        .map_err(|_| anyhow::anyhow!("the handshake's certificates are unreadable"))?
        .clone();
    let leaf = chain
        .first()
        .with_context(|| format!("{host}:{port} presented no certificate"))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| anyhow::anyhow!("the presented certificate does not parse: {e}"))?;
    Ok(Presented {
        fingerprint: Fingerprint::of(leaf),
        subject: certificate.subject().to_string(),
        issuer: certificate.issuer().to_string(),
        not_before: certificate.validity().not_before.to_string(),
        not_after: certificate.validity().not_after.to_string(),
        ca: certificate.is_ca(),
        chain_len: chain.len() - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_openssl_and_ssh_users_write_them() {
        let pin = Fingerprint([0xAB; 32]);
        let shown = pin.to_string();
        assert!(shown.starts_with("sha256:AB:AB:"), "{shown}");
        assert_eq!(Fingerprint::parse(&shown), Ok(pin));
        assert_eq!(Fingerprint::parse(&"ab".repeat(32)), Ok(pin));
        assert!(Fingerprint::parse("sha256:AB:CD").is_err());
        assert!(Fingerprint::parse("not hex").is_err());
    }
}
