//! SRTP and SRTCP (RFC 3711) with SDES keys (RFC 4568): `AES_CM_128_HMAC_SHA1_80` and
//! `AES_CM_128_HMAC_SHA1_32`. Protect and unprotect work in place on the packet buffer; the
//! rollover counter is tracked per SSRC and replays are refused (SRTP and SRTCP, RFC 3711
//! §3.3.2, 64-packet windows). Authentication tags are compared in constant time, and the
//! receive state kept per SSRC is capped at [`MAX_SSRCS`] (state is created only for authentic
//! packets, but a keyed peer must not grow it without end either).

use std::collections::HashMap;

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Most SSRCs one context tracks per direction and per protocol (RTP, RTCP).
pub const MAX_SSRCS: usize = 64;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha1 = Hmac<Sha1>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    #[error("unsupported crypto suite {0}")]
    Suite(String),
    #[error("malformed a=crypto key parameters")]
    KeyParams,
    #[error("packet too short for SRTP")]
    TooShort,
    #[error("authentication failed")]
    Auth,
    #[error("replayed packet")]
    Replay,
    #[error("more than {MAX_SSRCS} SSRCs on one SRTP context")]
    TooManySsrcs,
}

/// RFC 3711 §3.3.2 replay window over 48-bit (SRTP) or 31-bit (SRTCP) packet indices.
#[derive(Debug, Clone, Copy, Default)]
struct ReplayWindow {
    started: bool,
    highest: u64,
    /// Bit i set: index (highest − i) was received.
    bits: u64,
}

impl ReplayWindow {
    /// Whether `index` may be accepted (not seen, not older than the window).
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if self.started && index <= self.highest {
            let age = self.highest - index;
            if age >= 64 || self.bits & (1 << age) != 0 {
                return Err(SrtpError::Replay);
            }
        }
        Ok(())
    }

    /// Records an authentic `index`.
    fn accept(&mut self, index: u64) {
        if !self.started || index > self.highest {
            let shift = if self.started { index - self.highest } else { 0 };
            self.bits = if shift >= 64 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.highest = index;
            self.started = true;
        } else {
            self.bits |= 1 << (self.highest - index);
        }
    }
}

/// Constant-time comparison of a received tag with the computed one.
fn tags_equal(computed: &[u8], received: &[u8]) -> bool {
    computed.len() == received.len() && bool::from(computed.ct_eq(received))
}

/// A crypto suite of RFC 4568 §6.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn parse(name: &str) -> Result<Suite, SrtpError> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Ok(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Ok(Suite::AesCm128HmacSha1_32),
            other => Err(SrtpError::Suite(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// SRTP authentication tag length; SRTCP always uses 80 bits (RFC 4568 §6.2.1).
    fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// Master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

impl MasterKey {
    /// From the `inline:` key parameter of an `a=crypto` line (base64 of key ‖ salt), lifetime
    /// and MKI suffixes ignored.
    pub fn from_inline(params: &str) -> Result<MasterKey, SrtpError> {
        let b64 = params.trim().strip_prefix("inline:").unwrap_or(params.trim());
        let b64 = b64.split('|').next().unwrap_or("");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SrtpError::KeyParams)?;
        if raw.len() != 30 {
            return Err(SrtpError::KeyParams);
        }
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        key.copy_from_slice(&raw[..16]);
        salt.copy_from_slice(&raw[16..]);
        Ok(MasterKey { key, salt })
    }

    /// The `inline:` parameter for this key.
    pub fn to_inline(&self) -> String {
        let mut raw = Vec::with_capacity(30);
        raw.extend_from_slice(&self.key);
        raw.extend_from_slice(&self.salt);
        format!("inline:{}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// AES-CM keystream of `out.len()` bytes for `iv` (RFC 3711 §4.1.1).
fn keystream(key: &[u8; 16], iv: &[u8; 16], out: &mut [u8]) {
    out.fill(0);
    let mut c = Aes128Ctr::new(key.into(), iv.into());
    c.apply_keystream(out);
}

/// Session key derivation with key derivation rate 0 (RFC 3711 §4.3.1).
fn derive(master: &MasterKey, label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&master.salt);
    iv[7] ^= label;
    keystream(&master.key, &iv, out);
}

#[derive(Clone)]
struct SessionKeys {
    enc: [u8; 16],
    salt: [u8; 14],
    auth: [u8; 20],
}

impl SessionKeys {
    fn new(master: &MasterKey, rtcp: bool) -> SessionKeys {
        let base = if rtcp { 3 } else { 0 };
        let mut k = SessionKeys { enc: [0; 16], salt: [0; 14], auth: [0; 20] };
        derive(master, base, &mut k.enc);
        derive(master, base + 1, &mut k.auth);
        derive(master, base + 2, &mut k.salt);
        k
    }

    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        iv
    }

    fn tag(&self, data: &[&[u8]]) -> [u8; 20] {
        let mut m =
            <HmacSha1 as Mac>::new_from_slice(&self.auth).expect("HMAC takes any key length");
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes().into()
    }
}

/// Per-SSRC receive state: rollover counter, highest sequence number, replay window.
#[derive(Debug, Clone, Copy, Default)]
struct RecvState {
    roc: u32,
    s_l: u16,
    window: ReplayWindow,
}

/// One direction's SRTP/SRTCP context (one master key, any number of SSRCs).
#[derive(Clone)]
pub struct Context {
    suite: Suite,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    recv: HashMap<u32, RecvState>,
    send_roc: HashMap<u32, (u32, u16)>,
    srtcp_index: u32,
    /// SRTCP replay windows per sender SSRC.
    rtcp_recv: HashMap<u32, ReplayWindow>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "srtp::Context({})", self.suite.name())
    }
}

impl Context {
    pub fn new(suite: Suite, master: &MasterKey) -> Context {
        Context {
            suite,
            rtp: SessionKeys::new(master, false),
            rtcp: SessionKeys::new(master, true),
            recv: HashMap::new(),
            send_roc: HashMap::new(),
            srtcp_index: 0,
            rtcp_recv: HashMap::new(),
        }
    }

    /// Decrypts an SRTP packet in place; returns the plain RTP length (tag removed).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        let hdr = crate::rtp::RtpHeader::parse_encrypted(
            buf.get(..buf.len().saturating_sub(tag_len)).ok_or(SrtpError::TooShort)?,
        )
        .map_err(|_| SrtpError::TooShort)?;
        let len = buf.len() - tag_len;
        let known = self.recv.get(&hdr.ssrc).copied();
        if known.is_none() && self.recv.len() >= MAX_SSRCS {
            return Err(SrtpError::TooManySsrcs);
        }
        let st = known.unwrap_or_default();
        // RFC 3711 §3.3.1: guess the rollover counter from the highest sequence number seen.
        let seq = hdr.sequence;
        let v = if !st.window.started {
            st.roc
        } else if st.s_l < 32_768 {
            if i32::from(seq) - i32::from(st.s_l) > 32_768 {
                st.roc.wrapping_sub(1)
            } else {
                st.roc
            }
        } else if i32::from(st.s_l) - 32_768 > i32::from(seq) {
            st.roc.wrapping_add(1)
        } else {
            st.roc
        };
        let index = (u64::from(v) << 16) | u64::from(seq);
        st.window.check(index)?;
        let tag = self.rtp.tag(&[&buf[..len], &v.to_be_bytes()]);
        if !tags_equal(&tag[..tag_len], &buf[len..]) {
            return Err(SrtpError::Auth);
        }
        let iv = self.rtp.iv(hdr.ssrc, index);
        let mut c = Aes128Ctr::new((&self.rtp.enc).into(), (&iv).into());
        c.apply_keystream(&mut buf[hdr.payload_offset..len]);
        // Update the state only for authentic packets.
        let mut st = st;
        if !st.window.started || index > st.window.highest {
            st.roc = v;
            st.s_l = seq;
        }
        st.window.accept(index);
        self.recv.insert(hdr.ssrc, st);
        Ok(len)
    }

    /// Encrypts an RTP packet of `len` bytes in place and appends the tag; `buf` must have room
    /// for it. Returns the SRTP length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        if buf.len() < len + tag_len {
            return Err(SrtpError::TooShort);
        }
        let hdr = crate::rtp::RtpHeader::parse(&buf[..len]).map_err(|_| SrtpError::TooShort)?;
        let known = self.send_roc.get(&hdr.ssrc).copied();
        if known.is_none() && self.send_roc.len() >= MAX_SSRCS {
            return Err(SrtpError::TooManySsrcs);
        }
        let (roc, last) = known.unwrap_or((0, hdr.sequence));
        let roc = if hdr.sequence < last && last - hdr.sequence > 32_768 {
            roc.wrapping_add(1)
        } else {
            roc
        };
        self.send_roc.insert(hdr.ssrc, (roc, hdr.sequence));
        let index = (u64::from(roc) << 16) | u64::from(hdr.sequence);
        let iv = self.rtp.iv(hdr.ssrc, index);
        let mut c = Aes128Ctr::new((&self.rtp.enc).into(), (&iv).into());
        c.apply_keystream(&mut buf[hdr.payload_offset..len]);
        let tag = self.rtp.tag(&[&buf[..len], &roc.to_be_bytes()]);
        buf[len..len + tag_len].copy_from_slice(&tag[..tag_len]);
        Ok(len + tag_len)
    }

    /// Decrypts an SRTCP packet in place; returns the plain RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 8 + 4 + 10 {
            return Err(SrtpError::TooShort);
        }
        let len = buf.len() - 10;
        let e_index = u32::from_be_bytes([buf[len - 4], buf[len - 3], buf[len - 2], buf[len - 1]]);
        let index = u64::from(e_index & 0x7fff_ffff);
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let known = self.rtcp_recv.get(&ssrc).copied();
        if known.is_none() && self.rtcp_recv.len() >= MAX_SSRCS {
            return Err(SrtpError::TooManySsrcs);
        }
        let mut window = known.unwrap_or_default();
        window.check(index)?;
        let tag = self.rtcp.tag(&[&buf[..len]]);
        if !tags_equal(&tag[..10], &buf[len..]) {
            return Err(SrtpError::Auth);
        }
        window.accept(index);
        self.rtcp_recv.insert(ssrc, window);
        let plain_len = len - 4;
        if e_index & 0x8000_0000 != 0 {
            let iv = self.rtcp.iv(ssrc, index);
            let mut c = Aes128Ctr::new((&self.rtcp.enc).into(), (&iv).into());
            c.apply_keystream(&mut buf[8..plain_len]);
        }
        Ok(plain_len)
    }

    /// Encrypts an RTCP packet of `len` bytes in place, appending E‖index and the tag (14 bytes
    /// of room needed). Returns the SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < 8 || buf.len() < len + 14 {
            return Err(SrtpError::TooShort);
        }
        self.srtcp_index = (self.srtcp_index + 1) & 0x7fff_ffff;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let iv = self.rtcp.iv(ssrc, u64::from(self.srtcp_index));
        let mut c = Aes128Ctr::new((&self.rtcp.enc).into(), (&iv).into());
        c.apply_keystream(&mut buf[8..len]);
        buf[len..len + 4].copy_from_slice(&(0x8000_0000 | self.srtcp_index).to_be_bytes());
        let tag = self.rtcp.tag(&[&buf[..len + 4]]);
        buf[len + 4..len + 14].copy_from_slice(&tag[..10]);
        Ok(len + 14)
    }
}

#[cfg(test)]
fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3711 Appendix B.2: AES-CM keystream.
    #[test]
    fn aes_cm_keystream_vector() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
        let mut out = [0u8; 48];
        keystream(&key, &iv, &mut out);
        assert_eq!(out.to_vec(), hex("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0"));
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn key_derivation_vector() {
        let master = MasterKey {
            key: hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap(),
            salt: hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap(),
        };
        let k = SessionKeys::new(&master, false);
        assert_eq!(k.enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(k.salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(k.auth[..16].to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A15"));
    }

    #[test]
    fn protect_unprotect_round_trip_and_replay() {
        let master =
            MasterKey::from_inline("inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS").unwrap();
        assert_eq!(master.to_inline(), "inline:9sOd+W72ilwfNgNt0FzlGYj6YZPMqN1sJJx43UuS");
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let mut tx = Context::new(suite, &master);
            let mut rx = Context::new(suite, &master);
            for seq in [65_534u16, 65_535, 0, 1] {
                let mut p =
                    vec![0x80, 0, (seq >> 8) as u8, seq as u8, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
                p.extend_from_slice(&[7u8; 160]);
                let plain = p.clone();
                p.extend_from_slice(&[0u8; 10]);
                let n = tx.protect_rtp(&mut p, 172).unwrap();
                assert_ne!(&p[12..172], &plain[12..], "payload encrypted");
                let mut wire = p[..n].to_vec();
                let replay = wire.clone();
                let m = rx.unprotect_rtp(&mut wire).unwrap();
                assert_eq!(&wire[..m], &plain[..], "{suite:?} seq {seq}");
                let mut again = replay;
                assert_eq!(rx.unprotect_rtp(&mut again), Err(SrtpError::Replay));
            }
            let mut bad = vec![
                0x80, 0, 0, 9, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                11, 12, 13, 14,
            ];
            assert_eq!(rx.unprotect_rtp(&mut bad), Err(SrtpError::Auth));
        }
    }

    #[test]
    fn srtcp_round_trip() {
        let master =
            MasterKey::from_inline("inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x").unwrap();
        let mut tx = Context::new(Suite::AesCm128HmacSha1_32, &master);
        let mut rx = Context::new(Suite::AesCm128HmacSha1_32, &master);
        let rr = [
            0x81, 201, 0, 7, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 80, 0x12,
            0x34, 0x56, 0x78, 0, 0, 0x80, 0,
        ];
        let mut buf = rr.to_vec();
        buf.extend_from_slice(&[0; 14]);
        let n = tx.protect_rtcp(&mut buf, rr.len()).unwrap();
        let mut wire = buf[..n].to_vec();
        let m = rx.unprotect_rtcp(&mut wire).unwrap();
        assert_eq!(&wire[..m], &rr[..]);
        // RFC 3711 §3.3.2: a replayed SRTCP packet is refused, a newer one accepted.
        let mut replay = buf[..n].to_vec();
        assert_eq!(rx.unprotect_rtcp(&mut replay), Err(SrtpError::Replay));
        let mut next = rr.to_vec();
        next.extend_from_slice(&[0; 14]);
        let n2 = tx.protect_rtcp(&mut next, rr.len()).unwrap();
        let mut tampered = next[..n2].to_vec();
        tampered[10] ^= 1;
        assert_eq!(rx.unprotect_rtcp(&mut tampered), Err(SrtpError::Auth));
        assert_eq!(rx.unprotect_rtcp(&mut next[..n2]), Ok(rr.len()));
    }

    #[test]
    fn receive_state_per_ssrc_is_capped() {
        let master =
            MasterKey::from_inline("inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x").unwrap();
        let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &master);
        for ssrc in 0..=MAX_SSRCS as u32 {
            let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &master);
            let mut pkt = vec![0x80, 0, 0, 1, 0, 0, 0, 0];
            pkt.extend_from_slice(&ssrc.to_be_bytes());
            pkt.extend_from_slice(&[0xd5; 160]);
            let len = pkt.len();
            pkt.extend_from_slice(&[0; 10]);
            let n = tx.protect_rtp(&mut pkt, len).unwrap();
            let expect =
                if (ssrc as usize) < MAX_SSRCS { Ok(len) } else { Err(SrtpError::TooManySsrcs) };
            assert_eq!(rx.unprotect_rtp(&mut pkt[..n]), expect, "ssrc {ssrc}");
        }
    }

    /// The padding bit's count byte is ciphertext on the wire: unprotect must not read it.
    #[test]
    fn padded_packets_round_trip() {
        let master =
            MasterKey::from_inline("inline:NhqBK/JjtVJgmOgPyDKpvMTEjvFCQ4eiyVQelF6x").unwrap();
        let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &master);
        let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &master);
        // The fuzz case: V=2, P=1, a padding count of 0 bytes…9.
        let plain = hex("a00881ff2ef7000b0000000b00000000d40000000009000000");
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        let m = rx.unprotect_rtp(&mut buf[..n]).unwrap();
        assert_eq!(&buf[..m], &plain[..]);
    }

    #[test]
    fn bad_keys() {
        assert_eq!(MasterKey::from_inline("inline:short"), Err(SrtpError::KeyParams));
        assert!(matches!(Suite::parse("F8_128_HMAC_SHA1_80"), Err(SrtpError::Suite(_))));
    }
}
