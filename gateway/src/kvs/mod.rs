//! Kinesis Video Streams, the IO side: [`control`] is the control plane (streams created or
//! reused with the voice connector's retention, waited for until ACTIVE, their PutMedia
//! endpoints cached) through `aws-sdk-kinesisvideo`; [`sign`] signs the head of a PutMedia
//! request (SigV4, checked against botocore).

pub mod control;
pub mod sign;
