//! The S3 / MinIO object store behind the archive, on aws-sdk-s3: static keys from
//! configuration, a custom endpoint and path-style addressing for MinIO and other self-hosted
//! servers, and the bucket created on start when it is missing.

use std::time::Duration;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use async_trait::async_trait;

use super::{content_type, ArchiveObject, ObjectBackend, ObjectError};
use crate::configuration::S3Settings;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

/// S3 error codes that refuse the object itself, whatever the credentials and the bucket.
const REFUSED_CODES: &[&str] = &[
    "EntityTooLarge",
    "KeyTooLongError",
    "InvalidArgument",
    "MetadataTooLarge",
    "InvalidObjectName",
];

fn s3_error<E>(e: aws_sdk_s3::error::SdkError<E>) -> ObjectError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let refused = e.code().is_some_and(|c| REFUSED_CODES.contains(&c));
    // The server's code and message when it answered (`NoSuchBucket`, `SignatureDoesNotMatch`),
    // else what kept the request from it (a refused connection, a certificate).
    let text = match (e.code(), status) {
        (Some(code), Some(status)) => match e.message() {
            Some(message) => format!("{code} ({status}): {message}"),
            None => format!("{code} ({status})"),
        },
        _ => crate::clients::error_chain(&e),
    };
    match status {
        _ if refused => ObjectError::Refused(text),
        // Credentials, permissions, a missing bucket, another region: the server refuses us.
        Some(status) if (300..500).contains(&status) && status != 408 && status != 429 => {
            ObjectError::Denied(text)
        }
        _ => ObjectError::S3(text),
    }
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Result<Self, ObjectError> {
        let (Some(access_key), Some(secret_key)) = (&settings.access_key, &settings.secret_key)
        else {
            return Err(ObjectError::S3(
                "s3.access_key and s3.secret_key are required".into(),
            ));
        };
        // rustls on ring: the one crypto provider of devicehub's dependency tree. A pinned
        // certificate (`s3.ca_file`, `s3.fingerprint`) goes through reqwest (see `pinned`).
        let trust = crate::clients::pinning::Trust::from_settings(
            settings.ca_file.as_deref(),
            settings.fingerprint.as_deref(),
            "s3",
        )
        .map_err(|e| ObjectError::S3(format!("{e:#}")))?;
        let http = match trust {
            Some(trust) => {
                super::pinned::client(&trust).map_err(|e| ObjectError::S3(format!("{e:#}")))?
            }
            None => aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        };
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build();
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(Credentials::new(
                access_key.expose_secret(),
                secret_key.expose_secret(),
                None,
                None,
                "devicehub-config",
            ))
            .force_path_style(settings.path_style)
            .http_client(http)
            .timeout_config(timeouts)
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            // MinIO releases and other S3 servers differ in the checksum headers they know;
            // send and check checksums only where the API requires them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = settings.endpoint.as_deref().filter(|e| !e.is_empty()) {
            config = config.endpoint_url(endpoint);
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
        })
    }

    /// All pages of a ListObjectsV2: the objects, and the common prefixes for `delimiter`.
    async fn list_v2(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<ArchiveObject>, Vec<String>), ObjectError> {
        let (mut objects, mut folders) = (Vec::new(), Vec::new());
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_error)?;
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            objects.extend(page.contents().iter().filter_map(archive_object));
        }
        Ok((objects, folders))
    }
}

#[async_trait]
impl ObjectBackend for S3Store {
    async fn check(&self) -> Result<(), ObjectError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    /// Creates the bucket when it does not exist.
    async fn prepare(&self) -> Result<(), ObjectError> {
        if self.check().await.is_ok() {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(bucket = %self.bucket, "created the archive bucket");
                Ok(())
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(s3_error(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error(e)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ObjectError::S3(e.to_string()))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    /// S3's common prefixes for the delimiter `/`.
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        Ok(self.list_v2(prefix, Some("/")).await?.1)
    }

    /// S3 lists in key order, a thousand at a time.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ArchiveObject>, ObjectError> {
        Ok(self.list_v2(prefix, None).await?.0)
    }

    /// One request.
    async fn list_some(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<(Vec<ArchiveObject>, bool), ObjectError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(i32::try_from(max).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(s3_error)?;
        let objects = page.contents().iter().filter_map(archive_object).collect();
        Ok((objects, page.is_truncated().unwrap_or(false)))
    }
}

fn archive_object(object: &aws_sdk_s3::types::Object) -> Option<ArchiveObject> {
    Some(ArchiveObject {
        filename: object.key()?.to_owned(),
        size: object.size().unwrap_or(0).max(0) as u64,
        last_modified: object
            .last_modified()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or_default(),
    })
}
