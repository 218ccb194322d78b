//! The instance metadata the agent reads at start, through IMDSv2 (token PUT, then GETs), at
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` when set (the SDK client honours it).
//!
//! The identity document and its signature are passed through raw, as the official agent does.
//! `ECS_EXTERNAL` skips IMDS entirely (the caller does not build this then).

use aws_config::imds::Client;
use aws_config::provider_config::ProviderConfig;

/// What the agent learns from IMDS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFacts {
    pub instance_id: String,
    /// The identity document exactly as served.
    pub identity_document: String,
    pub identity_signature: String,
    /// Region from the identity document.
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    pub availability_zone_id: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
}

/// Errors reading instance metadata.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("instance metadata {path}: {message}")]
    Read { path: String, message: String },
}

/// An IMDSv2 client using the agent's HTTP client.
#[derive(Clone)]
pub struct Imds {
    client: Client,
}

impl Imds {
    pub fn new(http: aws_sdk_ecs::config::SharedHttpClient) -> Self {
        let pc = ProviderConfig::without_region().with_http_client(http);
        Imds {
            client: Client::builder().configure(&pc).build(),
        }
    }

    async fn get(&self, path: &str) -> Result<String, ImdsError> {
        self.client
            .get(path)
            .await
            .map(|v| v.as_ref().to_owned())
            .map_err(|e| ImdsError::Read {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }

    async fn optional(&self, path: &str) -> Option<String> {
        self.get(path).await.ok().filter(|v| !v.is_empty())
    }

    /// Reads what registration needs. The document, its signature and the instance ID are
    /// required; the rest is best effort.
    pub async fn instance_facts(&self) -> Result<InstanceFacts, ImdsError> {
        let instance_id = self.get("/latest/meta-data/instance-id").await?;
        let mac = self.optional("/latest/meta-data/mac").await;
        let (vpc_id, subnet_id) = match &mac {
            Some(mac) => {
                let base = format!("/latest/meta-data/network/interfaces/macs/{mac}");
                (
                    self.optional(&format!("{base}/vpc-id")).await,
                    self.optional(&format!("{base}/subnet-id")).await,
                )
            }
            None => (None, None),
        };
        let availability_zone_id = self
            .optional("/latest/meta-data/placement/availability-zone-id")
            .await;
        let identity_document = self
            .get("/latest/dynamic/instance-identity/document")
            .await?;
        let identity_signature = self
            .get("/latest/dynamic/instance-identity/signature")
            .await?;
        let doc: serde_json::Value = serde_json::from_str(&identity_document).unwrap_or_default();
        let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(InstanceFacts {
            instance_id,
            region: field("region"),
            availability_zone: field("availabilityZone"),
            identity_document,
            identity_signature,
            availability_zone_id,
            vpc_id,
            subnet_id,
        })
    }

    /// `spot/instance-action`: present (200) only when a Spot interruption is scheduled.
    pub async fn spot_instance_action(&self) -> Option<String> {
        self.optional("/latest/meta-data/spot/instance-action")
            .await
    }
}
