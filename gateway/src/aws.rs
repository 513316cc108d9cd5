//! The AWS SDK configuration every client of the gateway shares (S3 for CDRs, KVS, the
//! streaming events' targets): the standard credential chain, HTTPS on rustls with ring (the
//! TLS stack SIP uses; aws-lc is not compiled), `region` over the chain's, `us-east-1` when
//! neither says.

/// The shared configuration (each client adds its own endpoint override).
pub async fn shared_config(region: Option<&str>) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https);
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return shared.into_builder().region(aws_config::Region::new("us-east-1")).build();
    }
    shared
}
