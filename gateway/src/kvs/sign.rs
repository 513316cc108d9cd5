//! The signed head of a PutMedia request (kvs-putmedia.md §1.2, §1.4): the headers KVS
//! producers send (`x-amzn-stream-name`, `x-amzn-fragment-timecode-type: ABSOLUTE`,
//! `x-amzn-producer-start-timestamp` as `secs.mmm`, `x-amzn-fragment-acknowledgment-required:
//! 1`), signed with SigV4 for service `kinesisvideo` over the empty payload's hash (the body is
//! streamed, chunked, and not signed).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};

/// SHA-256 of the empty string: the payload hash PutMedia is signed with.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Why a request could not be signed (never with the credentials in it).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("PutMedia endpoint `{0}` has no host")]
    NoHost(String),
    #[error("cannot sign the PutMedia request: {0}")]
    Sign(String),
}

/// `x-amzn-producer-start-timestamp`: epoch seconds, a dot, milliseconds (zero-padded).
pub fn producer_timestamp(epoch_ms: u64) -> String {
    format!("{}.{:03}", epoch_ms / 1000, epoch_ms % 1000)
}

/// The headers of `POST <endpoint>/putMedia` for `stream`, signed at `time`: host, the
/// `x-amzn-*` headers, `x-amz-date`, `authorization` and, with temporary credentials,
/// `x-amz-security-token`. The caller adds `transfer-encoding: chunked` and `user-agent`
/// (unsigned, as aws-sigv4 leaves them).
pub fn putmedia_headers(
    endpoint: &str,
    stream: &str,
    producer_start_ms: u64,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split('/')
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| SignError::NoHost(endpoint.into()))?
        .to_string();
    let url = format!("{}/putMedia", endpoint.trim_end_matches('/'));
    let mut headers = vec![
        ("host".to_string(), host),
        ("x-amzn-stream-name".to_string(), stream.to_string()),
        ("x-amzn-fragment-timecode-type".to_string(), "ABSOLUTE".to_string()),
        ("x-amzn-producer-start-timestamp".to_string(), producer_timestamp(producer_start_ms)),
        ("x-amzn-fragment-acknowledgment-required".to_string(), "1".to_string()),
    ];
    let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Sign(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(EMPTY_SHA256.into()),
    )
    .map_err(|e| SignError::Sign(e.to_string()))?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| SignError::Sign(e.to_string()))?
        .into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_ascii_lowercase(), v.to_string()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// botocore 1.43.11's `SigV4Auth` signed the same request (fixed credentials and time,
    /// the empty payload's hash) with this signature: an independent implementation agrees.
    #[test]
    fn the_signature_equals_botocores() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_796_248_800); // 2026-12-02T22:00:00Z
        let h = putmedia_headers(
            "https://s-12345678.kinesisvideo.us-east-1.amazonaws.com",
            "ChimeVoiceConnector-abcdef1ghij2klmno3pqr4-00000000-0000-4000-8000-000000000000",
            1_796_256_000_123,
            &creds,
            "us-east-1",
            t,
        )
        .expect("signed");
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-amz-date"), Some("20261202T220000Z"));
        assert_eq!(get("x-amzn-producer-start-timestamp"), Some("1796256000.123"));
        assert_eq!(
            get("authorization"),
            Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date;x-amzn-fragment-acknowledgment-required;x-amzn-fragment-timecode-type;x-amzn-producer-start-timestamp;x-amzn-stream-name, Signature=cc5dd03e0b8c1b6741cc6c8b5a7bda4741d77cd6d58370a0e4637bf0af64623f")
        );
        assert!(!h.iter().any(|(_, v)| v.contains("wJalrXUtnFEMI")), "no secret in a header");
        assert_eq!(producer_timestamp(1_000_007), "1000.007");
        assert!(putmedia_headers("https://", "s", 0, &creds, "us-east-1", t).is_err());
    }
}
