//! A small HTTP/1.1 client on hyper for what the AWS SDK does not carry (the streaming
//! events' webhook; PutMedia has its own): one request per connection, `http://` or
//! `https://` (rustls, the system roots), every step under one deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;

/// Why a request failed (never with the URL's user information or query).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not an http:// or https:// URL with a host")]
    BadUrl,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("TLS setup: {0}")]
    TlsSetup(String),
}

/// A parsed target: the URL is checked once, not at each request.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    host: String,
    port: u16,
    tls: bool,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, ClientError> {
        let uri: Uri = url.parse().map_err(|_| ClientError::BadUrl)?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ClientError::BadUrl),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or(ClientError::BadUrl)?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target { uri, host, port, tls })
    }

    /// Where it points, without user information, path or query (for logs).
    pub fn describe(&self) -> String {
        format!("{}://{}:{}", if self.tls { "https" } else { "http" }, self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL's path with `suffix` appended (an API name after an endpoint).
    pub fn path_with(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.uri.path().trim_end_matches('/'))
    }

    /// TLS over `tcp` to this target's host (rustls, the system roots).
    pub async fn tls_connect(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ClientError> {
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::BadUrl)?;
        let connector = tokio_rustls::TlsConnector::from(tls_config()?);
        connector.connect(name, tcp).await.map_err(ClientError::Tls)
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            crate::signalling::certs::client_config(None, true).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(ClientError::TlsSetup)
}

/// POSTs `body` to `t`; returns the response status (the body is read and dropped).
pub async fn post(
    t: &Target,
    content_type: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<u16, ClientError> {
    tokio::time::timeout(timeout, post_inner(t, content_type, body))
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
}

async fn post_inner(t: &Target, content_type: &str, body: Bytes) -> Result<u16, ClientError> {
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(ClientError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let path = t.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authority = t.uri.authority().map_or(t.host.clone(), |a| {
        // No user information on the wire.
        a.as_str().rsplit('@').next().unwrap_or_default().to_string()
    });
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::USER_AGENT, concat!("voicegw/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(body))
        .map_err(|_| ClientError::BadUrl)?;
    if t.tls {
        let tls = t.tls_connect(tcp).await?;
        send(TokioIo::new(tls), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
}

async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<u16, ClientError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    // Bounded by the caller's deadline.
    let _ = resp.into_body().collect().await;
    driver.abort();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_once() {
        let t = Target::parse("https://user:secret@hooks.example:8443/x?token=1").unwrap();
        assert_eq!(t.describe(), "https://hooks.example:8443");
        assert!(!t.describe().contains("secret"));
        assert_eq!(Target::parse("http://127.0.0.1/e").unwrap().port, 80);
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("/relative").is_err());
        let kvs = Target::parse("https://s-1234abcd.kinesisvideo.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            (kvs.path_with("/putMedia"), kvs.port(), kvs.is_tls()),
            ("/putMedia".into(), 443, true)
        );
        let fake = Target::parse("http://127.0.0.1:8080/kvs/").unwrap();
        assert_eq!(fake.path_with("/putMedia"), "/kvs/putMedia");
    }
}
