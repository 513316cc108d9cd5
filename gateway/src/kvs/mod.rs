//! Kinesis Video Streams, the IO side: [`control`] is the control plane (streams created or
//! reused with the voice connector's retention, waited for until ACTIVE, their PutMedia
//! endpoints cached) through `aws-sdk-kinesisvideo`; [`sign`] signs the head of a PutMedia
//! request (SigV4, checked against botocore); [`putmedia`] is one PutMedia connection (hyper,
//! full duplex); [`uploader`] is the KVS sink: one task per stream driving the `streaming`
//! crate's sans-IO upload over those connections.

pub mod control;
pub mod putmedia;
pub mod sign;
pub mod uploader;
