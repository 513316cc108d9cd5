//! UUID v4 text from 16 random bytes the caller drew (the cores own no random source of their
//! own): TransactionIds, stream names.

/// `xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx` (RFC 9562 version 4, variant 10) from `bytes`.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_and_variant_bits_are_set() {
        let u = super::uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(super::uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }
}
