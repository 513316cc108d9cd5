//! Session descriptions (RFC 8866) as far as the media plane needs them: connection addresses,
//! media lines, `a=rtpmap`, `a=ptime`, direction, `a=rtcp`, `a=rtcp-mux`, `a=crypto`. Every line
//! is kept in order so a description can be rewritten and printed back.

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    #[error("SDP line {0} is not `<type>=<value>`")]
    BadLine(usize),
    #[error("SDP has no v= line first")]
    NoVersion,
    #[error("malformed m= line: {0}")]
    BadMedia(String),
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    /// Lines after the `m=` line, in order, as (type, value).
    pub lines: Vec<(char, String)>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level lines, in order, as (type, value).
    pub session: Vec<(char, String)>,
    pub media: Vec<Media>,
}

/// An `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

fn connection_addr(lines: &[(char, String)]) -> Option<IpAddr> {
    lines.iter().find(|(t, _)| *t == 'c').and_then(|(_, v)| {
        // c=IN IP4 192.0.2.1[/ttl]
        let addr = v.split_whitespace().nth(2)?;
        addr.split('/').next()?.parse().ok()
    })
}

impl Sdp {
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut chars = line.chars();
            let t = chars.next().ok_or(SdpError::BadLine(i + 1))?;
            if chars.next() != Some('=') || !t.is_ascii_lowercase() {
                return Err(SdpError::BadLine(i + 1));
            }
            let value = line[2..].to_string();
            if session.is_empty() && media.is_empty() && t != 'v' {
                return Err(SdpError::NoVersion);
            }
            if t == 'm' {
                let mut it = value.split_whitespace();
                let bad = || SdpError::BadMedia(value.chars().take(80).collect());
                let kind = it.next().ok_or_else(bad)?.to_string();
                let port = it
                    .next()
                    .ok_or_else(bad)?
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| bad())?;
                let proto = it.next().ok_or_else(bad)?.to_string();
                let formats = it.map(str::to_string).collect();
                media.push(Media { kind, port, proto, formats, lines: Vec::new() });
            } else if let Some(m) = media.last_mut() {
                m.lines.push((t, value));
            } else {
                session.push((t, value));
            }
        }
        if session.is_empty() {
            return Err(SdpError::NoVersion);
        }
        Ok(Sdp { session, media })
    }

    /// The session-level connection address.
    pub fn connection(&self) -> Option<IpAddr> {
        connection_addr(&self.session)
    }

    /// The address a media section receives on (its own `c=` or the session's).
    pub fn media_addr(&self, m: &Media) -> Option<IpAddr> {
        connection_addr(&m.lines).or_else(|| self.connection())
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (t, v) in &self.session {
            let _ = write!(out, "{t}={v}\r\n");
        }
        for m in &self.media {
            let _ = write!(out, "m={} {} {} {}\r\n", m.kind, m.port, m.proto, m.formats.join(" "));
            for (t, v) in &m.lines {
                let _ = write!(out, "{t}={v}\r\n");
            }
        }
        out
    }
}

impl Media {
    /// Values of `a=<name>` / `a=<name>:<value>` attributes.
    pub fn attributes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines.iter().filter(|(t, _)| *t == 'a').filter_map(move |(_, v)| {
            let (n, val) = v.split_once(':').unwrap_or((v.as_str(), ""));
            n.eq_ignore_ascii_case(name).then_some(val)
        })
    }

    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attributes("rtpmap")
            .filter_map(|v| {
                let (pt, enc) = v.split_once(' ')?;
                let mut parts = enc.trim().split('/');
                let encoding = parts.next()?.to_string();
                let clock_rate = parts.next()?.parse().ok()?;
                let channels = parts.next().and_then(|c| c.parse().ok());
                Some(RtpMap {
                    payload_type: pt.trim().parse().ok()?,
                    encoding,
                    clock_rate,
                    channels,
                })
            })
            .collect()
    }

    /// `a=ptime` in ms.
    pub fn ptime(&self) -> Option<u32> {
        self.attributes("ptime").next().and_then(|v| v.trim().parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=pbx 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\nm=video 0 RTP/AVP 96\r\nc=IN IP6 2001:db8::1\r\n";

    #[test]
    fn parses_and_prints_back() {
        let s = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.connection(), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(s.media.len(), 2);
        let a = &s.media[0];
        assert_eq!((a.kind.as_str(), a.port, a.proto.as_str()), ("audio", 6000, "RTP/AVP"));
        assert_eq!(a.formats, vec!["0", "8", "101"]);
        assert_eq!(
            a.rtpmaps()[1],
            RtpMap {
                payload_type: 101,
                encoding: "telephone-event".into(),
                clock_rate: 8000,
                channels: None
            }
        );
        assert_eq!(a.ptime(), Some(20));
        assert_eq!(a.attributes("sendrecv").count(), 1);
        assert_eq!(s.media_addr(&s.media[1]), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(s.to_text(), OFFER);
    }

    #[test]
    fn malformed() {
        assert_eq!(Sdp::parse(b"o=x\r\n"), Err(SdpError::NoVersion));
        assert_eq!(Sdp::parse(b"v=0\r\nbogus\r\n"), Err(SdpError::BadLine(2)));
        assert!(matches!(
            Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::BadMedia(_))
        ));
        assert_eq!(Sdp::parse(b"\xff"), Err(SdpError::NotUtf8));
    }
}
