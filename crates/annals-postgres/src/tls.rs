//! TLS for every connection of a store, over rustls: libpq's `sslmode`
//! (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`) and
//! `sslrootcert` (a PEM file of trusted certificates, or `system` for the
//! operating system's).
//!
//! As with libpq: `prefer` and `require` encrypt without checking the
//! server's certificate (`require` with an `sslrootcert` checks it as
//! `verify-ca` does); `verify-ca` checks that a trusted authority signed
//! it; `verify-full` checks that too and that it names the host connected
//! to. TLS is never used over a Unix socket (PostgreSQL does not offer it
//! there).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use annals_core::{Error, Field, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`: whether connections are encrypted and what of the
/// server's certificate is checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain; no certificate check
    /// (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; no certificate check (unless `sslrootcert` is
    /// given: then as [`SslMode::VerifyCa`]).
    Require,
    /// TLS, with a certificate signed by a trusted authority.
    VerifyCa,
    /// TLS, with a certificate signed by a trusted authority and naming the
    /// host connected to.
    VerifyFull,
}

impl SslMode {
    /// The names, as in URLs.
    pub const NAMES: [&'static str; 5] =
        ["disable", "prefer", "require", "verify-ca", "verify-full"];

    /// The name, as in URLs.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SslMode {
    type Err = Error;
    fn from_str(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::malformed(
                    Field::StoreOption,
                    format!(
                        "option sslmode = {other:?}: expected one of {}",
                        SslMode::NAMES.join(", ")
                    ),
                ));
            }
        })
    }
}

/// Where the trusted certificates come from (`sslrootcert`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RootCerts {
    /// A PEM file of one or more certificates.
    File(PathBuf),
    /// The operating system's trusted certificates (`sslrootcert=system`).
    System,
}

impl RootCerts {
    /// `system`, or a path.
    pub fn parse(text: &str) -> Result<RootCerts> {
        match text {
            "" => Err(Error::malformed(
                Field::StoreOption,
                "option sslrootcert is empty: give a PEM file or system",
            )),
            "system" => Ok(RootCerts::System),
            path => Ok(RootCerts::File(PathBuf::from(path))),
        }
    }

    fn load(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self {
            RootCerts::File(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        Error::malformed(
                            Field::StoreOption,
                            format!(
                                "option sslrootcert: cannot read certificates from {}: {e}",
                                path.display()
                            ),
                        )
                    })?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        Error::malformed(
                            Field::StoreOption,
                            format!(
                                "option sslrootcert: a certificate of {} is not usable: {e}",
                                path.display()
                            ),
                        )
                    })?;
                }
            }
            RootCerts::System => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(Error::malformed(
                Field::StoreOption,
                format!(
                    "option sslrootcert = {}: no trusted certificate found",
                    self.shown()
                ),
            ));
        }
        Ok(roots)
    }

    fn shown(&self) -> String {
        match self {
            RootCerts::File(path) => path.display().to_string(),
            RootCerts::System => "system".into(),
        }
    }
}

/// The TLS settings of a store.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct TlsOptions {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: needed by `verify-ca` and `verify-full`.
    pub root_certs: Option<RootCerts>,
}

impl TlsOptions {
    /// The driver's `sslmode` and the connector every connection uses.
    /// Fails when a verifying mode has no trusted certificates.
    pub(crate) fn connector(&self) -> Result<(tokio_postgres::config::SslMode, MakeRustlsConnect)> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = match (self.mode, &self.root_certs) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(Error::malformed(
                    Field::StoreOption,
                    format!(
                        "option sslmode = {}: needs option sslrootcert (a PEM file of the \
                         certificate authority, or system)",
                        self.mode
                    ),
                ));
            }
            (_, None) => None,
            (_, Some(roots)) => Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots.load()?),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| {
                    Error::malformed(Field::StoreOption, format!("option sslrootcert: {e}"))
                })?,
            ),
        };
        let verifier = Arc::new(Verifier {
            chain,
            name: self.mode == SslMode::VerifyFull,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::backend("setting up TLS", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let mode = match self.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        };
        Ok((mode, MakeRustlsConnect::new(config)))
    }
}

/// What a connection checks of the server's certificate: its chain up to
/// a trusted certificate (`chain`, with `sslrootcert`; without, any
/// certificate, as libpq's `prefer` and `require`), and with `name`
/// (`verify-full`) that it names the host. The handshake's signatures are
/// always checked.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name last, so any other failure is still one.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
