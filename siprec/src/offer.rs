//! A recording session's offer (RFC 7866 §6, §8): how an INVITE says it is one, its SDP and
//! metadata parts, each offered audio stream, and the answer a recording server gives
//! (`a=recvonly` on its own ports, each stream's `a=label` kept, one codec per stream).
//!
//! Recording clients differ, and each difference taken is listed ([`OfferTolerated`]) for the
//! log and the metrics: metadata typed without `+xml`, a metadata part without
//! `Content-Disposition`, extra body parts (`application/gtd`, vendor XML), a stream without
//! `a=label` or with a label that is not a number, one mixed stream instead of two, a
//! direction other than `sendonly` (`sendrecv`, none, `inactive` for a paused stream), a `c=`
//! line per m-line, an SRTP offer.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use media::sdp::{Media, Sdp};
use media::srtp::{MasterKey, Suite};
use sip::message::multipart;
use sip::message::HeaderName;
use sip::Request;

/// What an offer had that RFC 7866 does not ask for, taken anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferTolerated {
    /// `application/rs-metadata` (no `+xml`).
    MetadataWithoutXml,
    /// The metadata part has no `Content-Disposition: recording-session`.
    NoContentDisposition,
    /// Body parts other than the SDP and the metadata, ignored.
    ExtraParts,
    /// An audio stream without `a=label` (its index stands for it).
    MissingLabel,
    /// An `a=label` that is not a number.
    NonNumericLabel,
    /// One audio stream (both directions mixed) instead of two.
    OneMixedStream,
    /// A direction other than `a=sendonly`.
    DirectionVariant,
    /// A `c=` line in an m-section.
    PerMediaConnection,
    /// An SRTP offer (`RTP/SAVP`, `a=crypto`).
    Srtp,
    /// No metadata at all (the streams are recorded without it).
    NoMetadata,
}

impl OfferTolerated {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferTolerated::MetadataWithoutXml => "metadata_without_xml",
            OfferTolerated::NoContentDisposition => "no_content_disposition",
            OfferTolerated::ExtraParts => "extra_parts",
            OfferTolerated::MissingLabel => "missing_label",
            OfferTolerated::NonNumericLabel => "non_numeric_label",
            OfferTolerated::OneMixedStream => "one_mixed_stream",
            OfferTolerated::DirectionVariant => "direction_variant",
            OfferTolerated::PerMediaConnection => "per_media_connection",
            OfferTolerated::Srtp => "srtp",
            OfferTolerated::NoMetadata => "no_metadata",
        }
    }
}

/// Why an offer cannot be recorded (the recording server answers with the status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the body is not multipart/mixed with an SDP part: {0}")]
    Body(String),
    #[error("the SDP cannot be read: {0}")]
    Sdp(String),
    #[error("the offer has no audio stream")]
    NoAudio,
    #[error("the offer has {0} audio streams; at most {MAX_STREAMS} are recorded")]
    TooManyStreams(usize),
    #[error(
        "an SRTP stream offers no crypto suite voicegw supports (AES_CM_128_HMAC_SHA1_80/_32)"
    )]
    NoSupportedSuite,
}

impl OfferError {
    /// The SIP status a recording server answers with.
    pub fn status(&self) -> u16 {
        match self {
            OfferError::Body(_) => 415,
            OfferError::Sdp(_)
            | OfferError::NoAudio
            | OfferError::TooManyStreams(_)
            | OfferError::NoSupportedSuite => 488,
        }
    }
}

/// The most audio streams one recording session records (a stream per direction).
pub const MAX_STREAMS: usize = 2;

/// Whether an INVITE is record-only (formats.md §10): `X-Voice-Connector-Record-Only: true`,
/// as a header or a Request-URI parameter. voicegw answers it itself and records what the
/// caller sends; no carrier leg is placed.
pub fn is_record_only(request: &Request) -> bool {
    const NAME: &str = "X-Voice-Connector-Record-Only";
    let header = request.headers.iter().any(|h| {
        h.name.as_str().eq_ignore_ascii_case(NAME) && h.value.trim().eq_ignore_ascii_case("true")
    });
    let param = request.uri.params.value(NAME).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    header || param
}

/// Whether an INVITE asks for a recording session: `Require: siprec`, `+sip.src` in its
/// Contact, a multipart body with a recording metadata part, or record-only
/// ([`is_record_only`]).
pub fn is_recording_session(request: &Request) -> bool {
    if is_record_only(request) {
        return true;
    }
    let h = &request.headers;
    let require = h
        .get_all(&HeaderName::Require)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("siprec"));
    let src = h.get_all(&HeaderName::Contact).any(|c| c.to_ascii_lowercase().contains("+sip.src"));
    require || src || metadata_part(request).is_some()
}

/// The raw metadata part of a request's multipart body, if it has one.
fn metadata_part(request: &Request) -> Option<Bytes> {
    let ct = request.content_type()?;
    let parts = multipart::parse(ct, &request.body).ok()?;
    parts.into_iter().find(|p| is_metadata(p.content_type())).map(|p| p.body)
}

fn is_metadata(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        let t = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        t == "application/rs-metadata+xml" || t == "application/rs-metadata"
    })
}

/// The direction an offered stream is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendOnly,
    SendRecv,
    Inactive,
    /// `a=recvonly` from a client that only sends: taken as a paused stream.
    RecvOnly,
}

/// One offered audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedStream {
    /// Its m-line's place among all m-lines (`sdp.mediaIndex`).
    pub index: usize,
    /// `a=label` (`sdp.mediaLabel`), or the index as text when there is none.
    pub label: String,
    /// Where its RTP comes from (the m-line's or the session's `c=` and the port).
    pub from: Option<SocketAddr>,
    pub direction: Direction,
    /// The payload type recorded: the first G.711 the client offers, else its first.
    pub payload_type: u8,
    pub srtp: bool,
    /// An SRTP stream's chosen `a=crypto`: its tag, suite and the client's key.
    pub crypto: Option<(String, Suite, MasterKey)>,
}

/// A recording session's offer, read.
#[derive(Debug, Clone)]
pub struct Offer {
    pub sdp: Sdp,
    /// The metadata part as sent (the events carry it raw).
    pub metadata: Option<Bytes>,
    pub streams: Vec<OfferedStream>,
    pub tolerated: Vec<OfferTolerated>,
}

impl Offer {
    /// Reads an INVITE's (or re-INVITE's) body: multipart with an SDP part and, usually, a
    /// metadata part; a plain SDP body is taken too (a client that sends the metadata later).
    pub fn read(content_type: &str, body: &[u8]) -> Result<Offer, OfferError> {
        let mut tolerated = Vec::new();
        let mut note = |t: OfferTolerated| {
            if !tolerated.contains(&t) {
                tolerated.push(t);
            }
        };
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let (sdp_body, metadata) = if mime == "application/sdp" {
            (Bytes::copy_from_slice(body), None)
        } else if mime.starts_with("multipart/") {
            let parts = multipart::parse(content_type, body)
                .map_err(|e| OfferError::Body(e.to_string()))?;
            let mut sdp = None;
            let mut metadata = None;
            for p in parts {
                let t = p
                    .content_type()
                    .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
                match t.as_deref() {
                    Some("application/sdp") if sdp.is_none() => sdp = Some(p.body.clone()),
                    _ if is_metadata(p.content_type()) && metadata.is_none() => {
                        if t.as_deref() == Some("application/rs-metadata") {
                            note(OfferTolerated::MetadataWithoutXml);
                        }
                        let disposition = p.headers.get(&HeaderName::ContentDisposition);
                        if !disposition
                            .is_some_and(|d| d.to_ascii_lowercase().contains("recording-session"))
                        {
                            note(OfferTolerated::NoContentDisposition);
                        }
                        metadata = Some(p.body.clone());
                    }
                    _ => note(OfferTolerated::ExtraParts),
                }
            }
            let sdp = sdp.ok_or_else(|| OfferError::Body("no application/sdp part".into()))?;
            (sdp, metadata)
        } else {
            return Err(OfferError::Body(format!(
                "Content-Type {}",
                mime.chars().take(64).collect::<String>()
            )));
        };
        if metadata.is_none() {
            note(OfferTolerated::NoMetadata);
        }
        let sdp = Sdp::parse(&sdp_body).map_err(|e| OfferError::Sdp(e.to_string()))?;
        let mut streams = Vec::new();
        for (index, m) in sdp.media.iter().enumerate() {
            if !m.kind.eq_ignore_ascii_case("audio") || m.port == 0 {
                continue;
            }
            let stream = offered(&sdp, index, m, &mut note);
            if stream.srtp && stream.crypto.is_none() {
                return Err(OfferError::NoSupportedSuite);
            }
            streams.push(stream);
        }
        match streams.len() {
            0 => return Err(OfferError::NoAudio),
            1 => note(OfferTolerated::OneMixedStream),
            n if n > MAX_STREAMS => return Err(OfferError::TooManyStreams(n)),
            _ => {}
        }
        Ok(Offer { sdp, metadata, streams, tolerated })
    }

    /// The answer: every m-line answered in order (RFC 3264), the recorded audio streams on
    /// `ports` (one per stream, in the order of [`Offer::streams`]) at `local` with
    /// `a=recvonly` (`a=inactive` for a paused one), their label, the one payload type
    /// recorded and, for an SRTP stream, voicegw's key in `keys` under the offer's tag and
    /// suite; every other m-line refused with port 0.
    pub fn answer(
        &self,
        local: IpAddr,
        ports: &[u16],
        keys: &[Option<MasterKey>],
        session_version: u64,
    ) -> Sdp {
        let ip = if local.is_ipv4() { "IP4" } else { "IP6" };
        let session = vec![
            ('v', "0".to_string()),
            ('o', format!("voicegw {session_version} {session_version} IN {ip} {local}")),
            ('s', "voicegw recording".to_string()),
            ('c', format!("IN {ip} {local}")),
            ('t', "0 0".to_string()),
        ];
        let mut media = Vec::new();
        let mut port = ports.iter();
        for (index, m) in self.sdp.media.iter().enumerate() {
            let place = self.streams.iter().position(|s| s.index == index);
            match place.map(|i| (i, &self.streams[i])) {
                Some((i, s)) => {
                    let pt = s.payload_type.to_string();
                    let mut lines = Vec::new();
                    // The offer's rtpmap of the recorded type, or the static one of G.711.
                    let map = m
                        .attributes("rtpmap")
                        .find(|v| v.split_whitespace().next() == Some(pt.as_str()))
                        .map(str::to_string)
                        .or_else(|| match s.payload_type {
                            0 => Some("0 PCMU/8000".into()),
                            8 => Some("8 PCMA/8000".into()),
                            _ => None,
                        });
                    if let Some(map) = map {
                        lines.push(('a', format!("rtpmap:{map}")));
                    }
                    if m.attributes("label").next().is_some() {
                        lines.push(('a', format!("label:{}", s.label)));
                    }
                    if let (Some((tag, suite, _)), Some(Some(key))) = (&s.crypto, keys.get(i)) {
                        lines.push((
                            'a',
                            format!("crypto:{tag} {} {}", suite.name(), key.to_inline()),
                        ));
                    }
                    let dir = if matches!(s.direction, Direction::Inactive | Direction::RecvOnly) {
                        "inactive"
                    } else {
                        "recvonly"
                    };
                    lines.push(('a', dir.to_string()));
                    media.push(Media {
                        kind: m.kind.clone(),
                        port: port.next().copied().unwrap_or(0),
                        proto: m.proto.clone(),
                        formats: vec![pt],
                        lines,
                    });
                }
                None => media.push(Media {
                    kind: m.kind.clone(),
                    port: 0,
                    proto: m.proto.clone(),
                    formats: m.formats.iter().take(1).cloned().collect(),
                    lines: Vec::new(),
                }),
            }
        }
        Sdp { session, media }
    }
}

fn offered(
    sdp: &Sdp,
    index: usize,
    m: &Media,
    note: &mut impl FnMut(OfferTolerated),
) -> OfferedStream {
    let label = match m.attributes("label").next().map(str::trim) {
        Some(l) if !l.is_empty() => {
            if !l.bytes().all(|b| b.is_ascii_digit()) {
                note(OfferTolerated::NonNumericLabel);
            }
            l.chars().take(64).collect()
        }
        _ => {
            note(OfferTolerated::MissingLabel);
            index.to_string()
        }
    };
    if m.lines.iter().any(|(t, _)| *t == 'c') {
        note(OfferTolerated::PerMediaConnection);
    }
    let direction = if m.attributes("sendonly").next().is_some() {
        Direction::SendOnly
    } else if m.attributes("inactive").next().is_some() {
        Direction::Inactive
    } else if m.attributes("recvonly").next().is_some() {
        Direction::RecvOnly
    } else {
        Direction::SendRecv
    };
    if direction != Direction::SendOnly {
        note(OfferTolerated::DirectionVariant);
    }
    // SRTP: a SAVP profile, or best-effort SRTP (RTP/AVP with a key voicegw can use); a
    // SAVP stream with no usable key is refused by the caller.
    let crypto = media::negotiate::pick_crypto(m);
    let srtp = m.proto.to_ascii_uppercase().contains("SAVP") || crypto.is_some();
    if srtp {
        note(OfferTolerated::Srtp);
    }
    let offered: Vec<u8> = m.formats.iter().filter_map(|f| f.parse().ok()).collect();
    let payload_type = offered
        .iter()
        .copied()
        .find(|pt| *pt == 0 || *pt == 8)
        .or_else(|| offered.first().copied())
        .unwrap_or(0);
    OfferedStream {
        index,
        label,
        from: sdp.media_addr(m).map(|ip| SocketAddr::new(ip, m.port)),
        direction,
        payload_type,
        srtp,
        crypto,
    }
}

#[cfg(test)]
mod tests;
