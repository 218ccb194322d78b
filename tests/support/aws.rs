//! AWS SDK configuration pointed at the moto stand-in.
//!
//! The crate builds the SDK without its default HTTPS client (ring instead of
//! aws-lc), so the config gets an explicit client. Credentials are static dummies:
//! moto checks no signature. Nothing here can fall back to IMDS or the real AWS
//! endpoints: region, credentials and endpoint are all given.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use super::env;

pub const REGION: &str = "us-west-2";

/// An `SdkConfig` for moto at `ECS_TEST_MOTO_URL`; panics with a hint if moto is down.
pub async fn moto_config() -> SdkConfig {
    let url = env::moto_url();
    env::require_listening("moto", &url).await;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .credentials_provider(Credentials::new(
            "AKIDTESTMOTO",
            "dummy",
            None,
            None,
            "test",
        ))
        .region(Region::new(REGION))
        .endpoint_url(url)
        .load()
        .await
}
