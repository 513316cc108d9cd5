//! Offers in the shapes recording clients send (written after RFC 7866, RFC 8068's flows and
//! vendors' public documentation).

use super::*;
use sip::message::{parse_message, Message, ParseLimits};

const METADATA: &str = "<?xml version='1.0'?><recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode></recording>";

fn sdp(media: &str) -> String {
    format!("v=0\r\no=src 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n{media}")
}

const TWO_STREAMS: &str = "m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendonly\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:2\r\na=sendonly\r\n";

fn multipart_body(parts: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let mut body = String::new();
    for (ct, disposition, content) in parts {
        body.push_str(&format!("--uniqueBoundary\r\nContent-Type: {ct}\r\n"));
        if let Some(d) = disposition {
            body.push_str(&format!("Content-Disposition: {d}\r\n"));
        }
        body.push_str(&format!("\r\n{content}\r\n"));
    }
    body.push_str("--uniqueBoundary--\r\n");
    ("multipart/mixed;boundary=uniqueBoundary".into(), body.into_bytes())
}

fn invite(headers: &str, content_type: &str, body: &[u8]) -> Request {
    let mut m = format!("INVITE sip:recorder@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nFrom: <sip:src@192.0.2.10>;tag=1\r\nTo: <sip:recorder@198.51.100.1>\r\nCall-ID: rs-1@192.0.2.10\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    m.extend_from_slice(body);
    match parse_message(&m, &ParseLimits::default()).expect("INVITE") {
        Message::Request(r) => r,
        Message::Response(_) => panic!("a request"),
    }
}

#[test]
fn an_rfc_7866_offer_is_read_and_answered_recvonly_with_its_labels() {
    let (ct, body) = multipart_body(&[
        ("application/sdp", None, &sdp(TWO_STREAMS)),
        ("application/rs-metadata+xml", Some("recording-session"), METADATA),
    ]);
    let req = invite("Require: siprec\r\nContact: <sip:src@192.0.2.10>;+sip.src\r\n", &ct, &body);
    assert!(is_recording_session(&req));
    let offer = Offer::read(&ct, &body).expect("offer");
    assert!(offer.tolerated.is_empty(), "{:?}", offer.tolerated);
    assert_eq!(offer.metadata.as_deref(), Some(METADATA.as_bytes()));
    let labels: Vec<(&str, usize, u8)> =
        offer.streams.iter().map(|s| (s.label.as_str(), s.index, s.payload_type)).collect();
    assert_eq!(labels, [("1", 0, 8), ("2", 1, 0)], "the first G.711 offered is recorded");
    assert_eq!(offer.streams[0].from, Some("192.0.2.10:40000".parse().unwrap()));
    let answer = offer.answer("198.51.100.1".parse().unwrap(), &[20000, 20002], &[], 7).to_text();
    assert!(
        answer.contains(
            "m=audio 20000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:1\r\na=recvonly\r\n"
        ),
        "{answer}"
    );
    assert!(
        answer.contains(
            "m=audio 20002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:2\r\na=recvonly\r\n"
        ),
        "{answer}"
    );
    assert!(
        answer.contains("c=IN IP4 198.51.100.1\r\n")
            && answer.starts_with("v=0\r\no=voicegw 7 7 IN IP4")
    );
    assert!(Sdp::parse(answer.as_bytes()).is_ok());
}

#[test]
fn what_vendors_send_is_taken_and_said() {
    // Metadata without +xml and without a disposition, a GTD part beside it.
    let (ct, body) = multipart_body(&[
        ("application/sdp", None, &sdp(TWO_STREAMS)),
        ("application/gtd", Some("signal;handling=optional"), "IAM,\r\nPRN,isdn*,,NT100,,,,,"),
        ("application/rs-metadata", None, METADATA),
    ]);
    let offer = Offer::read(&ct, &body).expect("offer");
    assert_eq!(
        offer.tolerated,
        [
            OfferTolerated::ExtraParts,
            OfferTolerated::MetadataWithoutXml,
            OfferTolerated::NoContentDisposition
        ]
    );
    // One mixed stream, no label, sendrecv, its own c= line.
    let one = "m=audio 41000 RTP/AVP 0\r\nc=IN IP4 192.0.2.20\r\na=sendrecv\r\n";
    let (ct, body) = multipart_body(&[
        ("application/sdp", None, &sdp(one)),
        ("application/rs-metadata+xml", Some("recording-session"), METADATA),
    ]);
    let offer = Offer::read(&ct, &body).expect("offer");
    assert_eq!(
        offer.tolerated,
        [
            OfferTolerated::MissingLabel,
            OfferTolerated::PerMediaConnection,
            OfferTolerated::DirectionVariant,
            OfferTolerated::OneMixedStream
        ]
    );
    assert_eq!(offer.streams[0].label, "0");
    assert_eq!(offer.streams[0].from, Some("192.0.2.20:41000".parse().unwrap()));
    let answer = offer.answer("198.51.100.1".parse().unwrap(), &[20004], &[], 1).to_text();
    assert!(
        answer.contains("m=audio 20004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n"),
        "no label invented: {answer}"
    );
    // A paused stream (inactive), a non-numeric label, SRTP, a video line refused.
    let media = "m=audio 40000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=label:caller\r\na=inactive\r\nm=video 40010 RTP/AVP 96\r\nm=audio 40002 RTP/AVP 0\r\na=label:callee\r\na=sendonly\r\n";
    let (ct, body) = multipart_body(&[
        ("application/sdp", None, &sdp(media)),
        ("application/rs-metadata+xml", Some("recording-session"), METADATA),
    ]);
    let offer = Offer::read(&ct, &body).expect("offer");
    assert!(
        offer.tolerated.contains(&OfferTolerated::Srtp)
            && offer.tolerated.contains(&OfferTolerated::NonNumericLabel)
    );
    assert!(offer.streams[0].srtp && offer.streams[0].direction == Direction::Inactive);
    assert_eq!(offer.streams[1].index, 2, "the video line counts in the index");
    let (tag, suite, theirs) = offer.streams[0].crypto.clone().expect("the offer's key");
    assert_eq!((tag.as_str(), suite), ("1", media::srtp::Suite::AesCm128HmacSha1_80));
    assert_eq!(theirs.to_inline(), "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz");
    let ours = media::srtp::MasterKey { key: [1; 16], salt: [2; 14] };
    let answer = offer.answer(
        "198.51.100.1".parse().unwrap(),
        &[20000, 20002],
        &[Some(ours.clone()), None],
        1,
    );
    assert_eq!(
        answer.media[0].attributes("crypto").collect::<Vec<_>>(),
        [format!("1 AES_CM_128_HMAC_SHA1_80 {}", ours.to_inline())],
        "voicegw's key under the offer's tag and suite"
    );
    assert_eq!(answer.media[0].proto, "RTP/SAVP");
    assert_eq!(answer.media[2].attributes("crypto").count(), 0);
    let ports: Vec<(String, u16)> = answer.media.iter().map(|m| (m.kind.clone(), m.port)).collect();
    assert_eq!(ports, [("audio".into(), 20000), ("video".into(), 0), ("audio".into(), 20002)]);
    assert!(answer.media[0].attributes("inactive").next().is_some());
    // A plain SDP body: recorded without metadata.
    let offer = Offer::read("application/sdp", sdp(TWO_STREAMS).as_bytes()).expect("offer");
    assert_eq!(offer.tolerated, [OfferTolerated::NoMetadata]);
}

#[test]
fn offers_that_cannot_be_recorded_say_why_with_a_status() {
    let e = Offer::read("text/plain", b"hello").unwrap_err();
    assert_eq!(e.status(), 415);
    let (ct, body) =
        multipart_body(&[("application/rs-metadata+xml", Some("recording-session"), METADATA)]);
    assert_eq!(Offer::read(&ct, &body).unwrap_err().status(), 415, "no SDP part");
    let e =
        Offer::read("application/sdp", sdp("m=video 4000 RTP/AVP 96\r\n").as_bytes()).unwrap_err();
    assert_eq!((e.clone(), e.status()), (OfferError::NoAudio, 488));
    let three = "m=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\nm=audio 3 RTP/AVP 0\r\n";
    assert_eq!(
        Offer::read("application/sdp", sdp(three).as_bytes()).unwrap_err(),
        OfferError::TooManyStreams(3)
    );
    assert!(matches!(Offer::read("application/sdp", b"garbage"), Err(OfferError::Sdp(_))));
    let unsupported = "m=audio 1 RTP/SAVP 0\r\na=crypto:1 AEAD_AES_256_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    let e = Offer::read("application/sdp", sdp(unsupported).as_bytes()).unwrap_err();
    assert_eq!((e.clone(), e.status()), (OfferError::NoSupportedSuite, 488));
    let keyless = "m=audio 1 RTP/SAVP 0\r\n";
    assert_eq!(
        Offer::read("application/sdp", sdp(keyless).as_bytes()).unwrap_err(),
        OfferError::NoSupportedSuite,
        "SRTP with no a=crypto (DTLS-SRTP) is not supported"
    );
    // Not a recording session: an ordinary INVITE.
    let req = invite("", "application/sdp", sdp(TWO_STREAMS).as_bytes());
    assert!(!is_recording_session(&req));
    // Record-only, by header (any case) or by Request-URI parameter.
    let req = invite(
        "x-voice-connector-record-only: TRUE\r\n",
        "application/sdp",
        sdp(TWO_STREAMS).as_bytes(),
    );
    assert!(is_record_only(&req) && is_recording_session(&req));
    let req = invite(
        "X-Voice-Connector-Record-Only: false\r\n",
        "application/sdp",
        sdp(TWO_STREAMS).as_bytes(),
    );
    assert!(!is_record_only(&req));
}
