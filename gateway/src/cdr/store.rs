//! Where CDRs end up: a local directory (the default) or an S3 bucket (AWS or any
//! S3-compatible store), written under the record's key. Writing a key again replaces the
//! object with the same bytes, so retries and replays after a crash never make duplicates.

use std::path::{Path, PathBuf};

/// Why a record could not be stored (it stays in the spool and is retried).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local CDR store {path}: {source}")]
    Local { path: String, source: std::io::Error },
    #[error("S3 put s3://{bucket}/{key}: {message}")]
    S3 { bucket: String, key: String, message: String },
}

/// A CDR destination.
#[derive(Debug, Clone)]
pub enum Store {
    Local(PathBuf),
    S3(S3Store),
}

/// An S3 bucket and key prefix, with a client from the standard AWS credential chain.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

pub use connector::config::S3Target;

impl Store {
    /// An S3 store: credentials and region from the standard chain (environment, profile,
    /// web identity, container, instance metadata); `endpoint` for S3-compatible stores (path
    /// style addressing); `region` overrides the chain's.
    pub async fn s3(target: S3Target, endpoint: Option<&str>, region: Option<&str>) -> Store {
        let shared = crate::aws::shared_config(region).await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(e) = endpoint {
            conf = conf.endpoint_url(e).force_path_style(true);
        }
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        Store::S3(S3Store { client, bucket: target.bucket, prefix: target.prefix })
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            Store::Local(p) => p.display().to_string(),
            Store::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
        }
    }

    /// Makes what [`Store::put`] wrote durable (before the spool forgets it): one `syncfs` of
    /// the local store's file system for a whole batch instead of an fsync per record; S3 has
    /// nothing to do.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Local(root) => {
                let root = root.clone();
                let r = tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&root)?;
                    let dir = std::fs::File::open(&root)?;
                    nix::unistd::syncfs(&dir).map_err(std::io::Error::from)
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                r.map_err(|source| StoreError::Local { path: self.describe(), source })
            }
            Store::S3(_) => Ok(()),
        }
    }

    /// Stores `body` under `key`.
    pub async fn put(&self, key: &str, body: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(root) => {
                let (root, key, body) = (root.clone(), key.to_string(), body.to_string());
                tokio::task::spawn_blocking(move || put_local(&root, &key, body.as_bytes()))
                    .await
                    .unwrap_or_else(|e| {
                        Err(StoreError::Local {
                            path: "spawn_blocking".into(),
                            source: std::io::Error::other(e.to_string()),
                        })
                    })
            }
            Store::S3(s) => {
                let full = format!("{}{key}", s.prefix);
                s.client
                    .put_object()
                    .bucket(&s.bucket)
                    .key(&full)
                    .content_type("application/json")
                    .body(aws_sdk_s3::primitives::ByteStream::from(body.as_bytes().to_vec()))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::S3 {
                        bucket: s.bucket.clone(),
                        key: full,
                        message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                    })
            }
        }
    }
}

/// Writes `root/key` atomically: a temporary file in `root` renamed into place (made durable
/// by [`Store::flush`]).
fn put_local(root: &Path, key: &str, body: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    let path = root.join(key);
    let err = |p: &Path| {
        let p = p.display().to_string();
        move |source| StoreError::Local { path: p, source }
    };
    let parent = path.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(err(parent))?;
    let tmp_dir = root.join(".incoming");
    std::fs::create_dir_all(&tmp_dir).map_err(err(&tmp_dir))?;
    // Unique per put: records of one call share their key's last part (a CDR and its SDR are
    // uploaded at once), and a shared temporary file let one's body land under the other's key.
    let name = key.rsplit('/').next().unwrap_or("cdr");
    let tmp = tmp_dir.join(format!("{:016x}-{name}", rand::random::<u64>()));
    let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    f.write_all(body).map_err(err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(err(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CDR and its SDR share their key's last part and are put at the same time: each body
    /// lands under its own key (a shared temporary file once swapped them).
    #[test]
    fn concurrent_puts_of_keys_with_one_last_part_keep_their_bodies() {
        let root =
            std::env::temp_dir().join(format!("voicegw-store-concurrent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::thread::scope(|s| {
            for kind in ["CDRs", "SDRs"] {
                let root = &root;
                s.spawn(move || {
                    for i in 0..200 {
                        let key = format!("{kind}/json/vc/12.00.00.000_t{i}");
                        put_local(root, &key, kind.as_bytes()).unwrap();
                    }
                });
            }
        });
        for kind in ["CDRs", "SDRs"] {
            for i in 0..200 {
                let body = std::fs::read(root.join(format!("{kind}/json/vc/12.00.00.000_t{i}")));
                assert_eq!(body.unwrap(), kind.as_bytes(), "{kind} {i}");
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn bucket_names_and_urls() {
        assert_eq!(
            S3Target::parse("my-bucket").unwrap(),
            S3Target { bucket: "my-bucket".into(), prefix: String::new() }
        );
        assert_eq!(
            S3Target::parse("s3://cdrs.example/voice/gw1/").unwrap(),
            S3Target { bucket: "cdrs.example".into(), prefix: "voice/gw1/".into() }
        );
        assert!(S3Target::parse("s3://Upper").is_err());
        assert!(S3Target::parse("ab").is_err());
        assert!(S3Target::parse("-bad-").is_err());
    }

    #[test]
    fn local_writes_land_under_the_key() {
        let root = std::env::temp_dir().join(format!("voicegw-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        put_local(&root, "a/b/c_1", b"{}").unwrap();
        put_local(&root, "a/b/c_1", b"{}").unwrap();
        assert_eq!(std::fs::read(root.join("a/b/c_1")).unwrap(), b"{}");
        assert_eq!(std::fs::read_dir(root.join("a/b")).unwrap().count(), 1);
    }
}
