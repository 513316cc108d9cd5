//! One stream's PutMedia uploads (`streaming::upload::Upload`) driven as a hostile or broken
//! KVS would drive them: fragments pushed, connections that open, fail, break or answer any
//! bytes as acknowledgements (real ones for fragments in flight among them), time that jumps.
//! Never a panic; the buffer stays within its bound (or the newest fragment alone); a connection
//! is asked for only when none is open; nothing is asked after the stream failed or ended;
//! and a timer never stays due after it ran (no busy loop in the driver).
#![no_main]

use std::time::Duration;

use common::Instant;
use libfuzzer_sys::fuzz_target;
use streaming::muxer::Chunk;
use streaming::upload::{Upload, UploadConfig, UploadEvent};

const MAX_BUFFERED: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let cfg = UploadConfig {
        rotate_after: Duration::from_secs(60),
        max_buffered_bytes: MAX_BUFFERED,
        backoff_first: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        give_up_after: Duration::from_secs(20),
        ack_timeout: Duration::from_secs(10),
        persisted_acks: data.first().is_some_and(|b| b & 1 == 1),
    };
    let mut up = Upload::new(cfg, b"HEAD".to_vec());
    let mut now = Instant::ZERO;
    let mut timecode = 1_000u64;
    let mut open = false; // a connection the driver holds (asked for, open or closing)
    let mut over = false; // Failed or Done was seen
                          // Bytes pushed since the last fragment began: the newest fragment is at most that.
    let mut newest = 0usize;
    let mut out = Vec::new();
    let mut ops = data.iter().skip(1).copied();
    drain(&mut up, now, &mut open, &mut over);
    while let Some(op) = ops.next() {
        let arg = ops.next().unwrap_or(0);
        match op % 10 {
            0 => {
                timecode += 1000;
                let n = usize::from(arg) * 8 + 1;
                newest = n;
                up.push(now, Chunk { fragment: Some(timecode), bytes: &vec![1u8; n] });
            }
            1 => {
                newest += usize::from(arg);
                up.push(now, Chunk { fragment: None, bytes: &vec![2u8; usize::from(arg)] });
            }
            2 => up.connected(now),
            3 => {
                let status = [
                    None,
                    Some((503u16, "")),
                    Some((404, "")),
                    Some((400, "ConnectionLimitExceededException")),
                ];
                up.connect_failed(now, status[usize::from(arg) % 4], "refused");
                open = false;
            }
            4 => {
                // A real acknowledgement of a recent fragment, or the error table, or noise.
                let back = u64::from(arg % 4) * 1000;
                let tc = timecode.saturating_sub(back);
                let ack = match arg % 5 {
                    0 => format!("{{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":{tc},\"FragmentNumber\":\"{tc}\"}}"),
                    1 => format!("{{\"EventType\":\"RECEIVED\",\"FragmentTimecode\":{tc},\"FragmentNumber\":\"{tc}\"}}"),
                    2 => format!("{{\"EventType\":\"ERROR\",\"FragmentTimecode\":{tc},\"ErrorId\":{}}}", 4000 + u32::from(arg) * 3),
                    3 => "{\"EventType\":\"IDLE\"}".to_string(),
                    _ => "}{\"Event".to_string(),
                };
                up.receive(now, ack.as_bytes());
            }
            5 => {
                let len = usize::from(arg).min(data.len());
                up.receive(now, &data[..len]);
            }
            6 => {
                up.closed(now, "ended");
                open = false;
            }
            7 => {
                now = now + Duration::from_millis(u64::from(arg) * 97);
                if up.poll_timeout().is_some_and(|t| t <= now) {
                    up.handle_timeout(now);
                    assert!(up.poll_timeout().is_none_or(|t| t > now), "a timer stays due");
                }
            }
            8 => {
                let wants = up.wants_transmit();
                out.clear();
                let wrote = up.poll_transmit(now, &mut out);
                assert!(!wrote || wants, "wrote without wanting to");
            }
            _ => up.finish(now),
        }
        assert!(up.buffered() <= MAX_BUFFERED.max(newest), "{} buffered", up.buffered());
        drain(&mut up, now, &mut open, &mut over);
    }
});

/// Carries out what the upload asked, as the gateway's driver does; checks the asks.
fn drain(up: &mut Upload, now: Instant, open: &mut bool, over: &mut bool) {
    while let Some(e) = up.poll_event() {
        match e {
            UploadEvent::Connect => {
                assert!(!*over, "a connection asked for after the end");
                assert!(!*open, "a second connection asked for while one is held");
                *open = true;
            }
            UploadEvent::Abort { .. } => {
                *open = false;
                up.closed(now, "aborted");
            }
            UploadEvent::Failed { .. } | UploadEvent::Done => {
                assert!(!*over, "ended twice");
                *over = true;
            }
            UploadEvent::EndBody
            | UploadEvent::Acknowledged { .. }
            | UploadEvent::ErrorAck { .. } => {}
        }
    }
}
