//! `CdrBucket` (`bucket` or `s3://bucket[/prefix]`), parsed once at validation into the bucket
//! and key prefix the CDR store writes to.

/// Why a `CdrBucket` is not usable.
#[derive(Debug, thiserror::Error)]
#[error("invalid CDR bucket `{0}`: expected a bucket name or s3://bucket[/prefix]")]
pub struct BucketError(String);

/// Where the configuration sends CDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: String,
    /// Key prefix, empty or ending in `/`.
    pub prefix: String,
}

impl S3Target {
    /// `bucket` or `s3://bucket[/prefix]`; bucket names as S3 allows them (3 to 63 lower-case
    /// letters, digits, `-` and `.`, not starting or ending with `-`).
    pub fn parse(s: &str) -> Result<S3Target, BucketError> {
        let rest = s.strip_prefix("s3://").unwrap_or(s);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with('-')
            && !bucket.ends_with('-');
        if !ok {
            return Err(BucketError(s.to_string()));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(S3Target { bucket: bucket.to_string(), prefix })
    }
}
