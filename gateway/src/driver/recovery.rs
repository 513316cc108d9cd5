//! Crash recovery of call legs: at each answer the BYEs that would end the call's legs are
//! journaled with its CDR; a restart after a crash sends them, so no carrier or PBX keeps a
//! call nobody relays.

use connector::cdr_record::RecoveryBye;
use sip::{Peer, Transport};

use super::Core;

/// How to end call `call`'s legs, for the journal.
pub fn recovery_byes(core: &Core, call: u64) -> Vec<RecoveryBye> {
    core.recovery_byes(call)
        .into_iter()
        .map(|(peer, bye)| RecoveryBye {
            transport: peer.transport.to_string(),
            addr: peer.addr,
            request: String::from_utf8_lossy(&bye.to_bytes()).into_owned(),
        })
        .collect()
}

/// Ends the legs of the calls the previous run left up (it crashed or was killed): each gets
/// the BYE journaled at its answer.
pub fn send_recovery_byes(core: &mut Core, byes: Vec<RecoveryBye>, now: sip::Instant) {
    if byes.is_empty() {
        return;
    }
    let mut sent = 0;
    for b in byes {
        let transport = match b.transport.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            other => {
                tracing::warn!(
                    transport = other,
                    "journaled BYE with an unknown transport; skipped"
                );
                continue;
            }
        };
        match sip::Message::parse(b.request.as_bytes()) {
            Ok(sip::Message::Request(req)) => {
                core.send_recovery_bye(Peer::new(transport, b.addr), req, now);
                sent += 1;
            }
            _ => tracing::warn!("journaled BYE unreadable; skipped"),
        }
    }
    tracing::warn!(legs = sent, "ending the call legs the previous run left up (BYE)");
}
