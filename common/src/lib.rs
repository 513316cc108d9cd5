//! What the sans-IO cores of voicegw (`sip`, `media`) share, so the gateway passes their values
//! from one to the other as they are: which leg of a call ([`Side`]) and the time they are
//! handed ([`Instant`]).

pub mod time;
pub mod uuid;

pub use time::Instant;

/// Which leg of a call: A is the inbound leg (the caller, towards whom voicegw is the UAS),
/// B the outbound one (the callee, towards whom voicegw is the UAC). The media relay's sides
/// are the same legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B (per-leg arrays).
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_index_their_arrays_and_swap() {
        assert_eq!((Side::A.index(), Side::B.index()), (0, 1));
        assert_eq!((Side::A.other(), Side::B.other()), (Side::B, Side::A));
    }
}
