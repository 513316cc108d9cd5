//! TLS configuration. Server: the configured certificate, or a self-signed one generated on
//! first start under `<data dir>/tls` and reused afterwards. Client (outbound TLS): the
//! configured CA bundle or the system's roots, TLS 1.2 and 1.3 only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: no certificate found in the PEM file")]
    NoCertificate(String),
    #[error("{0}: no private key found in the PEM file")]
    NoKey(String),
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.display().to_string(), source }
}

/// Paths of the generated certificate and key under `data_dir`.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("voicegw-cert.pem"), dir.join("voicegw-key.pem"))
}

/// Returns (certificate, key) paths, generating a self-signed pair when none is configured and
/// none was generated before.
pub fn ensure(
    configured: Option<(&Path, &Path)>,
    data_dir: &Path,
) -> Result<(PathBuf, PathBuf, bool), CertError> {
    if let Some((c, k)) = configured {
        return Ok((c.to_path_buf(), k.to_path_buf(), false));
    }
    let (cert, key) = generated_paths(data_dir);
    if cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    let dir = cert.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ck = rcgen::generate_simple_self_signed(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(|e| CertError::Generate(e.to_string()))?;
    std::fs::write(&cert, ck.cert.pem()).map_err(io(&cert))?;
    write_private(&key, ck.key_pair.serialize_pem().as_bytes())?;
    Ok((cert, key, true))
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(data).map_err(io(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> Result<(), CertError> {
    std::fs::write(path, data).map_err(io(path))
}

/// A rustls server configuration (TLS 1.2 and 1.3 only) from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let pem = std::fs::read(cert).map_err(io(cert))?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut &pem[..]).collect::<Result<_, _>>().map_err(io(cert))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate(cert.display().to_string()));
    }
    let pem = std::fs::read(key).map_err(io(key))?;
    let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &pem[..])
        .map_err(io(key))?
        .ok_or_else(|| CertError::NoKey(key.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    Ok(Arc::new(cfg))
}

/// A rustls client configuration for outbound TLS. `ca_file` replaces the system roots;
/// `verify == false` accepts any server certificate (signatures are still checked).
pub fn client_config(
    ca_file: Option<&Path>,
    verify: bool,
) -> Result<Arc<rustls::ClientConfig>, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let cfg = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(io(path))?;
                for c in rustls_pemfile::certs(&mut &pem[..]) {
                    roots.add(c.map_err(io(path))?)?;
                }
                if roots.is_empty() {
                    return Err(CertError::NoCertificate(path.display().to_string()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = roots.add(c);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate but still checks the handshake signatures
/// (`tls_verify_server = false`).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = std::env::temp_dir().join(format!("voicegw-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (c, k, generated) = ensure(None, &dir).unwrap();
        assert!(generated);
        let first = std::fs::read(&c).unwrap();
        let (_, _, again) = ensure(None, &dir).unwrap();
        assert!(!again);
        assert_eq!(std::fs::read(&c).unwrap(), first);
        server_config(&c, &k).unwrap();
        assert!(matches!(server_config(&k, &k), Err(CertError::NoCertificate(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
