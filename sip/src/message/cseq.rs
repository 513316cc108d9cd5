use std::fmt;

use super::{Method, ParseError};

/// `CSeq: <number> <method>` (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let bad = || ParseError::header("CSeq", s);
        let mut it = s.split_whitespace();
        let seq = it.next().ok_or_else(bad)?.parse::<u32>().map_err(|_| bad())?;
        let method = it.next().ok_or_else(bad)?;
        if it.next().is_some() || !super::method::is_token(method) {
            return Err(bad());
        }
        Ok(CSeq { seq, method: Method::parse(method) })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse(" 4711  INVITE").unwrap(),
            CSeq { seq: 4711, method: Method::Invite }
        );
        assert!(CSeq::parse("x INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("99999999999 BYE").is_err());
    }
}
