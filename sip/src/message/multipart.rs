//! `multipart/*` bodies (RFC 2046 §5.1), as used by SIPREC (SDP + recording metadata).

use bytes::Bytes;

use super::headers::HeaderName;
use super::parse::{header_end, memfind};
use super::{Headers, Params, ParseError};

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Headers,
    pub body: Bytes,
}

impl Part {
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(&HeaderName::ContentType)
    }
}

/// The `boundary` parameter of a multipart Content-Type, unquoted; `None` if the type is not
/// multipart.
pub fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let b = Params::parse(params).value("boundary")?.trim_matches('"').to_string();
    (!b.is_empty()).then_some(b)
}

/// Splits a multipart body into its parts.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Part>, ParseError> {
    let b = boundary(content_type).ok_or_else(|| ParseError::Multipart("no boundary".into()))?;
    let delim = format!("--{b}");
    let mut parts = Vec::new();
    let mut pos = memfind(body, delim.as_bytes())
        .ok_or_else(|| ParseError::Multipart("first boundary missing".into()))?;
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        // Skip transport padding and the CRLF after the boundary line.
        let line_end = memfind(&body[pos..], b"\n")
            .ok_or_else(|| ParseError::Multipart("unterminated boundary line".into()))?;
        let start = pos + line_end + 1;
        let next_rel = memfind(&body[start..], delim.as_bytes())
            .ok_or_else(|| ParseError::Multipart("closing boundary missing".into()))?;
        let mut end = start + next_rel;
        // The CRLF before the delimiter belongs to the delimiter.
        if end > start && body[end - 1] == b'\n' {
            end -= 1;
            if end > start && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        parts.push(parse_part(&body[start..end])?);
        pos = start + next_rel;
    }
}

fn parse_part(raw: &[u8]) -> Result<Part, ParseError> {
    // A part with no headers starts directly with the blank line.
    if raw.starts_with(b"\r\n") || raw.starts_with(b"\n") {
        let skip = if raw.starts_with(b"\r\n") { 2 } else { 1 };
        return Ok(Part { headers: Headers::new(), body: Bytes::copy_from_slice(&raw[skip..]) });
    }
    let end =
        header_end(raw).ok_or_else(|| ParseError::Multipart("part headers unterminated".into()))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| ParseError::NotUtf8)?;
    let mut headers = Headers::new();
    for line in head.lines().filter(|l| !l.trim().is_empty()) {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| ParseError::Multipart(format!("bad part header {line:.40}")))?;
        headers.push(HeaderName::parse(n.trim()), v.trim());
    }
    Ok(Part { headers, body: Bytes::copy_from_slice(&raw[end..]) })
}

/// Prints parts with `boundary`; the matching Content-Type is
/// `multipart/mixed;boundary=<boundary>`.
pub fn print(boundary: &str, parts: &[Part]) -> Bytes {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        for h in p.headers.iter() {
            out.extend_from_slice(format!("{}: {}\r\n", h.name, h.value).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siprec_style_body() {
        let ct = "multipart/mixed;boundary=\"foobar\"";
        let body = b"--foobar\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--foobar\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n<x/>\r\n--foobar--\r\n";
        let parts = parse(ct, body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type(), Some("application/sdp"));
        assert_eq!(&parts[0].body[..], b"v=0\r\n");
        assert_eq!(&parts[1].body[..], b"<x/>");
        let printed = print("foobar", &parts);
        assert_eq!(parse(ct, &printed).unwrap(), parts);
    }

    #[test]
    fn malformed() {
        assert!(parse("application/sdp", b"x").is_err());
        assert!(parse("multipart/mixed;boundary=x", b"--x\r\nContent-Type: a\r\n\r\nbody").is_err());
    }
}
