//! Kinesis Video Streams, the IO side: [`control`] is the control plane (streams created or
//! reused with the voice connector's retention, waited for until ACTIVE, their PutMedia
//! endpoints cached) through `aws-sdk-kinesisvideo`.

pub mod control;
