use super::*;

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

fn cfg() -> UploadConfig {
    UploadConfig {
        rotate_after: Duration::from_secs(60),
        max_buffered_bytes: 1000,
        backoff_first: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        give_up_after: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(10),
        persisted_acks: true,
    }
}

fn events(up: &mut Upload) -> Vec<UploadEvent> {
    std::iter::from_fn(|| up.poll_event()).collect()
}

fn frag(tc: u64, body: &[u8]) -> Chunk<'_> {
    Chunk { fragment: Some(tc), bytes: body }
}

fn more(body: &[u8]) -> Chunk<'_> {
    Chunk { fragment: None, bytes: body }
}

fn sent(up: &mut Upload) -> Vec<u8> {
    let mut out = Vec::new();
    up.poll_transmit(at(0), &mut out);
    out
}

fn persisted(tc: u64, n: u32) -> String {
    format!("{{\"EventType\":\"PERSISTED\",\"FragmentTimecode\":{tc},\"FragmentNumber\":\"{n}\"}}")
}

#[test]
fn a_connection_carries_the_head_then_the_fragments_and_acks_release_them() {
    let mut up = Upload::new(cfg(), b"HEAD".to_vec());
    assert_eq!(events(&mut up), [UploadEvent::Connect]);
    up.push(at(0), frag(1000, b"A1"));
    assert!(sent(&mut up).is_empty(), "nothing is written before the connection is up");
    up.connected(at(0));
    assert_eq!(sent(&mut up), b"HEADA1");
    up.push(at(0), more(b"a"));
    up.push(at(0), frag(2000, b"B1"));
    assert_eq!(sent(&mut up), b"aB1");
    assert!(sent(&mut up).is_empty());
    assert_eq!(up.buffered(), 5);
    // A RECEIVED does not release a fragment of a stream that keeps data; PERSISTED does.
    up.receive(at(10), br#"{"EventType":"BUFFERING","FragmentTimecode":1000}{"EventType":"RECEIVED","FragmentTimecode":1000}"#);
    assert!(events(&mut up).is_empty());
    up.receive(at(20), persisted(1000, 7).as_bytes());
    assert_eq!(
        events(&mut up),
        [UploadEvent::Acknowledged {
            timecode: 1000,
            fragment_number: Some("7".into()),
            first: true
        }]
    );
    assert_eq!(up.first_fragment_number(), Some("7"));
    assert_eq!(up.buffered(), 2);
    up.push(at(0), more(b"b"));
    assert_eq!(sent(&mut up), b"b", "the handed position survives the release");
    let s = up.stats();
    assert_eq!((s.acks[0], s.acks[1], s.acks[2], s.bytes_sent), (1, 1, 1, 10));
}

#[test]
fn the_stream_ends_after_its_last_fragment_is_written_and_acknowledged() {
    let mut up = Upload::new(cfg(), b"H".to_vec());
    up.connected(at(0));
    up.push(at(0), frag(0, b"X"));
    up.finish(at(0));
    assert_eq!(events(&mut up), [UploadEvent::Connect]);
    assert_eq!(sent(&mut up), b"HX");
    assert_eq!(events(&mut up), [UploadEvent::EndBody]);
    up.receive(at(5), persisted(0, 1).as_bytes());
    up.closed(at(6), "response ended");
    let ev = events(&mut up);
    assert_eq!(ev.last(), Some(&UploadEvent::Done), "{ev:?}");
}

#[test]
fn a_retriable_error_reconnects_with_backoff_and_resends_what_was_not_acknowledged() {
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, b"F0"));
    up.push(at(0), frag(1000, b"F1"));
    sent(&mut up);
    up.receive(at(10), persisted(0, 1).as_bytes());
    up.receive(at(20), br#"{"EventType":"ERROR","FragmentTimecode":1000,"ErrorId":5000}"#);
    let ev = events(&mut up);
    assert_eq!(ev[1], UploadEvent::ErrorAck { error_id: 5000 });
    assert!(matches!(&ev[2], UploadEvent::Abort { reason } if reason.contains("5000")), "{ev:?}");
    up.closed(at(20), "aborted");
    assert_eq!(up.poll_timeout(), Some(at(120)), "first backoff");
    up.handle_timeout(at(120));
    assert_eq!(events(&mut up), [UploadEvent::Connect]);
    up.connect_failed(at(130), None, "connection refused");
    assert_eq!(up.poll_timeout(), Some(at(330)), "doubled");
    up.handle_timeout(at(330));
    events(&mut up);
    up.connected(at(340));
    assert_eq!(sent(&mut up), b"HF1", "a new head, then the fragment not acknowledged");
    assert_eq!(up.stats().connections, 2);
}

#[test]
fn final_errors_and_a_long_outage_fail_the_stream() {
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connect_failed(at(0), Some((404, "ResourceNotFoundException")), "404 ResourceNotFound");
    let ev = events(&mut up);
    assert!(
        matches!(&ev[..], [UploadEvent::Failed { reason }] if reason.contains("404")),
        "{ev:?}"
    );
    up.push(at(0), frag(0, b"ignored"));
    assert_eq!(up.buffered(), 0);

    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, b"F0"));
    sent(&mut up);
    up.receive(at(1), br#"{"EventType":"ERROR","FragmentTimecode":0,"ErrorId":4008}"#);
    let ev = events(&mut up);
    assert!(
        ev.iter().any(
            |e| matches!(e, UploadEvent::Failed { reason } if reason.contains("no longer exists"))
        ),
        "{ev:?}"
    );

    // Retriable failures for longer than give_up_after.
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    let mut now = 0;
    let mut failed = false;
    for _ in 0..100 {
        up.connect_failed(at(now), Some((503, "")), "503");
        if events(&mut up).iter().any(|e| matches!(e, UploadEvent::Failed { .. })) {
            failed = true;
            break;
        }
        now = up.poll_timeout().expect("a retry").since_origin().as_millis() as u64;
        up.handle_timeout(at(now));
        assert_eq!(events(&mut up), [UploadEvent::Connect]);
    }
    assert!(failed && (5000..5500).contains(&now), "gave up at {now} ms");
}

#[test]
fn a_stream_that_ends_while_waiting_to_reconnect_is_done_and_asks_for_nothing_more() {
    // Found by fuzz/kvs_upload: the backoff's timer used to ask for a connection after Done.
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.closed(at(0), "broke");
    assert_eq!(up.poll_timeout(), Some(at(100)));
    up.finish(at(10));
    assert_eq!(events(&mut up), [UploadEvent::Done]);
    assert_eq!(up.poll_timeout(), None);
    up.handle_timeout(at(1000));
    assert!(events(&mut up).is_empty());
}

#[test]
fn a_rotation_and_an_ack_timeout_due_together_leave_no_timer_due() {
    // Found by fuzz/kvs_upload: the rotation was handled and the silent connection's
    // timer stayed in the past (a busy loop in the driver).
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, b"F0"));
    up.handle_timeout(at(80_000));
    let ev = events(&mut up);
    assert!(matches!(&ev[..], [UploadEvent::Abort { .. }]), "{ev:?}");
    assert!(up.poll_timeout().is_none_or(|t| t > at(80_000)));
}

#[test]
fn a_dead_endpoint_costs_at_most_the_buffer() {
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    for k in 0..100u64 {
        up.push(at(0), frag(k * 1000, &[0u8; 100]));
    }
    assert!(up.buffered() <= 1000, "{}", up.buffered());
    let s = up.stats();
    assert_eq!((s.dropped_fragments, s.dropped_bytes), (90, 9000));
    // The newest fragments are the ones kept.
    up.connected(at(0));
    assert_eq!(sent(&mut up).len(), 1 + 1000);
}

#[test]
fn overflowing_mid_fragment_drops_the_connection_and_a_silent_one_is_replaced() {
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, &[1u8; 600]));
    sent(&mut up);
    up.push(at(0), more(&[1u8; 100]));
    up.push(at(0), frag(1000, &[2u8; 400]));
    let ev = events(&mut up);
    assert!(matches!(&ev[..], [UploadEvent::Abort { .. }]), "{ev:?}");

    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, b"F"));
    sent(&mut up);
    assert_eq!(up.poll_timeout(), Some(at(10_000)));
    up.receive(at(4000), br#"{"EventType":"IDLE"}"#);
    up.handle_timeout(at(10_000));
    assert!(events(&mut up).is_empty(), "IDLE acks keep it alive");
    up.handle_timeout(at(14_000));
    let ev = events(&mut up);
    assert!(
        matches!(&ev[..], [UploadEvent::Abort { reason }] if reason.contains("no acknowledgement")),
        "{ev:?}"
    );
}

#[test]
fn rotation_ends_the_body_at_the_next_fragment_boundary_and_reconnects_at_once() {
    let mut up =
        Upload::new(UploadConfig { ack_timeout: Duration::from_secs(120), ..cfg() }, b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, b"F0"));
    sent(&mut up);
    up.receive(at(100), persisted(0, 1).as_bytes());
    events(&mut up);
    up.push(at(0), frag(59_000, b"F1"));
    sent(&mut up);
    assert_eq!(up.poll_timeout(), Some(at(60_000)));
    up.handle_timeout(at(60_000));
    assert!(events(&mut up).is_empty(), "F1 is still being written");
    assert_eq!(up.poll_timeout(), Some(at(100 + 120_000)), "only the ack timeout is left");
    // F1 goes on; nothing ends before the next fragment begins.
    up.push(at(0), more(b"+"));
    assert!(up.wants_transmit());
    assert_eq!(sent(&mut up), b"+");
    assert!(!up.wants_transmit() && events(&mut up).is_empty());
    up.push(at(0), frag(61_000, b"F2"));
    assert!(up.wants_transmit());
    let mut want = Vec::new();
    crate::mkv::write_tag(&mut want, crate::mkv::END_OF_FRAGMENT, "");
    assert_eq!(sent(&mut up), want, "F1 is closed with the end-of-fragment tag; F2 waits");
    assert_eq!(events(&mut up), [UploadEvent::EndBody]);
    up.push(at(0), more(b"f2"));
    assert!(sent(&mut up).is_empty(), "nothing more on the closing connection");
    up.receive(at(61_010), persisted(59_000, 2).as_bytes());
    up.closed(at(61_020), "response ended");
    let ev = events(&mut up);
    assert_eq!(ev.last(), Some(&UploadEvent::Connect), "no backoff for a rotation: {ev:?}");
    up.connected(at(61_030));
    assert_eq!(sent(&mut up), b"HF2f2", "the new connection starts with the new fragment");
    assert_eq!((up.stats().rotations, up.stats().connections), (1, 2));
    assert_eq!(up.last_fragment_number(), Some("2"));
    assert_eq!(up.first_fragment_number(), Some("1"));

    // Due while everything is acknowledged: the body ends at once, with no tag.
    let mut up = Upload::new(cfg(), b"H".to_vec());
    events(&mut up);
    up.connected(at(0));
    up.push(at(0), frag(0, b"F0"));
    sent(&mut up);
    up.receive(at(10), persisted(0, 1).as_bytes());
    events(&mut up);
    assert_eq!(up.poll_timeout(), Some(at(60_000)));
    up.handle_timeout(at(60_000));
    assert_eq!(events(&mut up), [UploadEvent::EndBody]);
    assert_eq!(up.poll_timeout(), Some(at(70_000)), "the response gets ack_timeout to end");
    up.handle_timeout(at(70_000));
    let ev = events(&mut up);
    assert!(
        matches!(&ev[..], [UploadEvent::Abort { reason }] if reason.contains("did not end")),
        "{ev:?}"
    );
    up.closed(at(70_000), "dropped");
    assert_eq!(events(&mut up), [UploadEvent::Connect], "still a rotation: no backoff");
    assert_eq!(up.stats().ack_timeouts, 1);
}

#[test]
fn http_refusals_are_sorted_as_kvs_documents_them() {
    assert_eq!(http_action(400, "ConnectionLimitExceededException"), ErrorAction::Reconnect);
    assert_eq!(http_action(400, "ClientLimitExceededException"), ErrorAction::Reconnect);
    assert_eq!(http_action(400, "InvalidArgumentException"), ErrorAction::GiveUp);
    assert_eq!(http_action(401, "NotAuthorizedException"), ErrorAction::GiveUp);
    assert_eq!(http_action(404, "ResourceNotFoundException"), ErrorAction::GiveUp);
    assert_eq!(http_action(500, ""), ErrorAction::Reconnect);
    assert_eq!(http_action(503, ""), ErrorAction::Reconnect);
}
