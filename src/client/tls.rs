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

    /// `--insecure`: certificates are not checked.
    pub fn is_insecure(&self) -> bool {
        self.insecure
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
        let mut given = Vec::new();
        if let Some(path) = cacert {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("failed to read the CA file {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("the CA file {} is not valid PEM", path.display()))?;
            if certs.is_empty() {
                bail!("the CA file {} holds no certificate", path.display());
            }
            for cert in &certs {
                roots.add(cert.clone()).with_context(|| {
                    format!(
                        "the CA file {} holds an unusable certificate",
                        path.display()
                    )
                })?;
            }
            given = certs;
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .context("failed to set up certificate verification")?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustGiven { webpki, given }))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether `error` is webpki's "a CA certificate was presented as the server's
/// own": what a self-signed `openssl req -x509` certificate (CA:TRUE) gets.
pub fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            other.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
        }
        _ => false,
    }
}

/// The usual verification (system roots and `--cacert`), with one addition that
/// curl and OpenSSL make too: a server certificate that is itself one of the
/// `--cacert` certificates is trusted as given (a self-signed certificate, even one
/// marked CA:TRUE, as `openssl req -x509` makes), once it names the host and is
/// within its validity period.
#[derive(Debug)]
struct TrustGiven {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    given: Vec<CertificateDer<'static>>,
}

impl TrustGiven {
    fn verify_given(
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as E;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(E::BadEncoding))?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(E::NotValidForName))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(E::BadEncoding))?;
        let validity = parsed.validity();
        let now = now.as_secs() as i64;
        if now < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(E::NotValidYet));
        }
        if now > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(E::Expired));
        }
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for TrustGiven {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self.given.iter().any(|g| g.as_ref() == end_entity.as_ref()) =>
            {
                TrustGiven::verify_given(end_entity, server_name, now)
            }
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
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
