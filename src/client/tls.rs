//! The rustls client configuration shared by sockets and REST calls: the system's
//! roots, plus `--cacert`, or (with `--insecure`) no verification at all.
//!
//! Reading the system's certificate store takes longer than a whole local `connect`
//! (about 7 ms of 11 here), so it happens only when a `wss://` or `https://` URL is
//! used; `--cacert` and `--insecure` are still checked at start-up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The TLS settings of a run, turned into a configuration on first use.
pub struct Tls {
    cacert: Option<PathBuf>,
    insecure: bool,
    config: OnceLock<Arc<rustls::ClientConfig>>,
}

impl Tls {
    pub fn new(cacert: Option<PathBuf>, insecure: bool) -> anyhow::Result<Tls> {
        let tls = Tls {
            cacert,
            insecure,
            config: OnceLock::new(),
        };
        if tls.cacert.is_some() || tls.insecure {
            // What the user gave is checked now, so a bad file fails before anything runs.
            tls.config()?;
        }
        Ok(tls)
    }

    /// The configuration, built on first use.
    pub fn config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        if let Some(config) = self.config.get() {
            return Ok(config.clone());
        }
        let config = client_config(self.cacert.as_deref(), self.insecure)?;
        Ok(self.config.get_or_init(|| config).clone())
    }
}

/// A configuration for clients that never do TLS (an `http://` REST base): reqwest
/// wants one, and it need not read the system's store.
pub fn plain_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client TLS configuration (ALPN `http/1.1`, as WebSocket upgrades need).
pub fn client_config(
    cacert: Option<&Path>,
    insecure: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("failed to set up TLS")?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // A machine without a system store still works with --cacert.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = cacert {
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("failed to read the CA file {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("the CA file {} is not valid PEM", path.display()))?;
            if certs.is_empty() {
                bail!("the CA file {} holds no certificate", path.display());
            }
            for cert in certs {
                roots.add(cert).with_context(|| {
                    format!(
                        "the CA file {} holds an unusable certificate",
                        path.display()
                    )
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `--insecure`: any certificate is accepted, but signatures are still checked so
/// the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnything(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
