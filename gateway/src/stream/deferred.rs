//! The RTP payloads a relay thread's streamed calls accepted in one turn: the tap only copies
//! each into an arena, which goes to the streaming worker ([`super::worker`]) once the turn's
//! packets were sent; there they go through their legs' jitter buffers and muxers. Arenas are
//! reused, so nothing is allocated per packet once they have grown to the largest turn.

use common::Instant;
use media::relay::{Side, Tap};
use media::rtp::RtpHeader;

/// One payload kept for its call's streams.
struct Item {
    call: u64,
    side: Side,
    /// The packet's header, its payload moved to `start` in the arena (offset 0 there).
    header: RtpHeader,
    start: usize,
    now: Instant,
}

/// See the module documentation.
pub struct Deferred {
    arena: Vec<u8>,
    items: Vec<Item>,
}

impl Default for Deferred {
    fn default() -> Self {
        // A batch is at most 1024 packets; most are 160-byte G.711 payloads.
        Deferred { arena: Vec::with_capacity(256 * 1024), items: Vec::with_capacity(1024) }
    }
}

impl Deferred {
    /// The tap that keeps the packets of call `call`.
    pub fn tap(&mut self, call: u64) -> Collect<'_> {
        Collect { deferred: self, call }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of payload kept.
    pub fn payload_bytes(&self) -> usize {
        self.arena.len()
    }

    /// Forgets what was kept (the arena keeps its room).
    pub fn clear(&mut self) {
        self.items.clear();
        self.arena.clear();
    }

    /// Hands every kept payload, in order, to `f` (call, side, header, payload, arrival), and
    /// empties the arena for reuse.
    pub fn drain(&mut self, mut f: impl FnMut(u64, Side, &RtpHeader, &[u8], Instant)) {
        for item in &self.items {
            let payload = &self.arena[item.start..item.start + item.header.payload_len];
            f(item.call, item.side, &item.header, payload, item.now);
        }
        self.clear();
    }
}

/// [`Deferred`]'s tap for one call.
pub struct Collect<'a> {
    deferred: &'a mut Deferred,
    call: u64,
}

impl Tap for Collect<'_> {
    fn rtp(&mut self, side: Side, header: &RtpHeader, packet: &[u8], now: Instant) {
        let Some(payload) =
            packet.get(header.payload_offset..header.payload_offset + header.payload_len)
        else {
            return;
        };
        let d = &mut *self.deferred;
        let start = d.arena.len();
        d.arena.extend_from_slice(payload);
        let header = RtpHeader { payload_offset: 0, ..*header };
        d.items.push(Item { call: self.call, side, header, start, now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_come_back_in_order_with_their_calls_and_the_arena_is_reused() {
        let mut d = Deferred::default();
        let mut packet = vec![0x80, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        packet.extend_from_slice(&[0xd5; 160]);
        let h = RtpHeader::parse(&packet).expect("rtp");
        let t = Instant::ZERO;
        d.tap(3).rtp(Side::A, &h, &packet, t);
        packet[12] = 0x55;
        d.tap(5).rtp(Side::B, &h, &packet, t);
        let mut got = Vec::new();
        assert_eq!((d.is_empty(), d.payload_bytes()), (false, 320));
        d.drain(|call, side, h, payload, _| {
            assert_eq!((h.payload_offset, h.payload_len, payload.len()), (0, 160, 160));
            got.push((call, side, payload[0]));
        });
        assert!(d.is_empty());
        assert_eq!(got, [(3, Side::A, 0xd5), (5, Side::B, 0x55)]);
        let capacity = d.arena.capacity();
        d.drain(|_, _, _, _, _| panic!("drained once"));
        assert_eq!(d.arena.capacity(), capacity);
    }
}
