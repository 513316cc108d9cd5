//! SIP torture messages in the manner of RFC 4475 (written for voicegw from the RFC's test
//! descriptions; §3.1.1 valid, §3.1.2 invalid, §3.3 transaction layer, §3.4 application layer),
//! each sent over UDP and over TCP, with the answer voicegw must give: valid ones are parsed and
//! answered by policy (never 400), invalid ones get 400 (or 505, 483, 501) or, when nothing can
//! be addressed, silence. After all of them the gateway still answers OPTIONS and its memory is
//! where it was.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use harness::Gateway;

/// What a torture message must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Exactly this final status.
    Status(u16),
    /// Any final answer but 400 (the message is valid; the policy decides).
    NotBadRequest,
    /// No answer at all (a response, or nothing addressable).
    Silence,
}

struct Case {
    name: &'static str,
    want: Want,
    msg: fn(&str, &str) -> String,
}

/// The voice connector's host name (the Request-URI host of termination calls).
fn vc(_gateway: &str) -> String {
    "abcdef1ghij2klmno3pqr4.voiceconnector.local".to_string()
}

/// The cases, as functions of (gateway address, our transport and address for Via).
const CASES: &[Case] = &[
    // §3.1.1.1 a short tortuous INVITE: folding, compact and odd-case header names, whitespace
    // around separators, unknown parameters and headers, escaped user.
    Case {
        name: "wsinv",
        want: Want::NotBadRequest,
        msg: |gw, via| {
            format!(
        "INVITE sip:%2B12065550101@{vc};unknownparam SIP/2.0\r\nTO :\r\n sip:%2B12065550101@{vc} ;   tag    = 1918181833n\r\nfrom   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\nMaX-fOrWaRdS: 0068\r\nCall-ID: wsinv.ndaksdj@192.0.2.1\r\nContent-Length   : 150\r\ncseq: 0009\r\n  INVITE\r\nVia  : SIP  /   2.0\r\n /{via};branch=z9hG4bKwsinv\r\ns :\r\nNewFangledHeader:   newfangled value\r\n continued newfangled value\r\nUnknownHeaderWithUnusualValue: ;;,,;;,;\r\nContent-Type: application/sdp\r\nRoute:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\nv:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\nm:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\r\nv=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n",
        vc = vc(gw))
        },
    },
    // §3.1.1.2 a method name made of every token character: unknown, so 501.
    Case {
        name: "intmeth",
        want: Want::Status(501),
        msg: |_gw, via| {
            format!(
        "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-.!%66*_+`'~\r\nTo: \"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\nFrom: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}\";tag=_token~1'+`*%!-.\r\nCall-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}}{{\r\nCSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\nMax-Forwards: 255\r\nextensionHeader-!.%*+_`'~:\u{feff}\u{5927}\u{505c}\u{96fb}\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.1.3/4 escapes (and an escaped NUL) in URI user parts.
    Case {
        name: "esc01+escnull",
        want: Want::NotBadRequest,
        msg: |gw, via| {
            format!(
        "INVITE sip:sips%3Auser%40example.com@{vc} SIP/2.0\r\nTo: sip:%61lice@{vc}\r\nFrom: <sip:null-%00-null@example.com>;tag=839923423\r\nMax-Forwards: 70\r\nCall-ID: esc01.239409asdfakjkn23onasd0-3234\r\nCSeq: 234234 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKesc01\r\nContact: <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\nContent-Length: 0\r\n\r\n", vc = vc(gw))
        },
    },
    // §3.1.1.6 no LWS between a display name and its <.
    Case {
        name: "lwsdisp",
        want: Want::Status(200),
        msg: |gw, via| {
            format!(
        "OPTIONS sip:user@{gw} SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: caller<sip:caller@example.com>;tag=323\r\nMax-Forwards: 70\r\nCall-ID: lwsdisp.1234abcd@funky.example.com\r\nCSeq: 60 OPTIONS\r\nVia: SIP/2.0/{via};branch=z9hG4bKlwsdisp\r\nl: 0\r\n\r\n")
        },
    },
    // §3.1.1.7 long values in general.
    Case {
        name: "longreq",
        want: Want::Status(200),
        msg: |gw, via| {
            format!(
        "OPTIONS sip:user@{gw} SIP/2.0\r\nTo: \"I have a user name of {long} proportion\" <sip:user@example.com:6000;unknownparam={long}>\r\nFrom: sip:{long}@example.net;tag={long}\r\nCall-ID: longreq.one{long}\r\nCSeq: 3882340 OPTIONS\r\nMax-Forwards: 70\r\nVia: SIP/2.0/{via};branch=z9hG4bKlongreq\r\nVia: SIP/2.0/TCP sip33.example.com\r\nVia: SIP/2.0/TCP sip32.example.com\r\nX-{long}: {long}\r\nContent-Length: 0\r\n\r\n", long = "very".repeat(30))
        },
    },
    // §3.1.1.11 a multipart body: parsed, the SDP part is what matters.
    Case {
        name: "mpart01",
        want: Want::NotBadRequest,
        msg: |gw, via| {
            let body = "--boundary42\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n--boundary42\r\nContent-Type: text/plain\r\n\r\nhello\r\n--boundary42--\r\n";
            format!("INVITE sip:+12065550101@{vc} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bKmpart01\r\nMax-Forwards: 70\r\nFrom: <sip:+12065550100@example.com>;tag=mp\r\nTo: <sip:+12065550101@{vc}>\r\nCall-ID: mpart01@example.com\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@192.0.2.1>\r\nContent-Type: multipart/mixed;boundary=boundary42\r\nContent-Length: {}\r\n\r\n{body}", body.len(), vc = vc(gw))
        },
    },
    // §3.1.2.1 extra whitespace in the request line and a bad Via: still readable, refused.
    Case {
        name: "badinv01",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw} SIP/2.0\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=134161461246\r\nMax-Forwards: 7\r\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\r\nCSeq: 8 INVITE\r\nVia: SIP/2.0/{via};;,;,,\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.2 Content-Length larger than the message (UDP: 400; TCP: waits, then times out).
    Case {
        name: "clerr",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw} SIP/2.0\r\nMax-Forwards: 80\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=93942939o2\r\nContact: <sip:caller@hungry.example.net>\r\nCall-ID: clerr.0ha0isndaksdjweiafasdk3\r\nCSeq: 8 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKclerr\r\nContent-Type: application/sdp\r\nContent-Length: 9999\r\n\r\nv=0\r\n")
        },
    },
    // §3.1.2.4 a negative Content-Length.
    Case {
        name: "ncl",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw} SIP/2.0\r\nMax-Forwards: 254\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=32394234\r\nCall-ID: ncl.0ha0isndaksdj2193423r542w35\r\nCSeq: 0 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKncl\r\nContent-Type: application/sdp\r\nContent-Length: -999\r\n\r\n")
        },
    },
    // §3.1.2.5 scalar values far out of range.
    Case {
        name: "scalar02",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bKscalar02\r\nMax-Forwards: 300\r\nFrom: sip:caller@example.net;tag=39ansfi3\r\nTo: <sip:user@example.com>\r\nCall-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\nCSeq: 36893488147419103232 INVITE\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.7 an unterminated quoted string.
    Case {
        name: "quotbal",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw} SIP/2.0\r\nTo: \"Mr. J. User <sip:j.user@example.com>\r\nFrom: sip:caller@example.net;tag=93334\r\nMax-Forwards: 10\r\nCall-ID: quotbal.aksdj\r\nCSeq: 0 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKquotbal\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.8 <> around the Request-URI.
    Case {
        name: "ltgtruri",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE <sip:user@{gw}> SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: sip:caller@example.net;tag=39291\r\nMax-Forwards: 23\r\nCall-ID: ltgtruri.1@192.0.2.5\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKltgtruri\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.9 LWS inside the Request-URI.
    Case {
        name: "lwsruri",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw}; lr SIP/2.0\r\nTo: sip:user@example.com;tag=3xfe-9921883-z9f\r\nFrom: sip:caller@example.net;tag=231413434\r\nMax-Forwards: 5\r\nCall-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\r\nCSeq: 2130706432 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKlwsruri\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.16 an unknown SIP version.
    Case {
        name: "badvers",
        want: Want::Status(505),
        msg: |gw, via| {
            format!(
        "OPTIONS sip:t.watson@{gw} SIP/7.0\r\nVia: SIP/7.0/{via};branch=z9hG4bKbadvers\r\nMax-Forwards: 70\r\nFrom: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\nTo: T. Watson <sip:t.watson@example.org>\r\nCall-ID: badvers.31417@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.17 CSeq method different from the request method.
    Case {
        name: "mismatch01",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "OPTIONS sip:user@{gw} SIP/2.0\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=34525\r\nMax-Forwards: 6\r\nCall-ID: mismatch01.dj0234sxdfl3\r\nCSeq: 8 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKmismatch01\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.1.2.19 a response code far beyond 699: dropped, no answer to a response.
    Case {
        name: "bigcode",
        want: Want::Silence,
        msg: |_gw, via| {
            format!(
        "SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/{via};branch=z9hG4bK-bigcode\r\nCall-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\nCSeq: 353494 INVITE\r\nFrom: <sip:user@example.com>;tag=39ansfi3\r\nTo: <sip:user@example.edu>;tag=8823\r\nContent-Length: 0\r\n\r\n")
        },
    },
    // §3.4.1 missing mandatory headers: answered 400 at the source.
    Case {
        name: "insuf",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "INVITE sip:user@{gw} SIP/2.0\r\nCSeq: 193942 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKinsuf\r\nContent-Type: application/sdp\r\nl: 0\r\n\r\n")
        },
    },
    // §3.4.3 Max-Forwards 0 on a request voicegw would relay.
    Case {
        name: "zeromf",
        want: Want::Status(483),
        msg: |gw, via| {
            format!(
        "INVITE sip:+12065550101@{vc} SIP/2.0\r\nCall-ID: zeromf.kljsdfkl@192.0.2.1\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/{via};branch=z9hG4bKzeromf\r\nMax-Forwards: 0\r\nFrom: <sip:+12065550100@example.com>;tag=zf\r\nTo: <sip:+12065550101@{vc}>\r\nContent-Length: 0\r\n\r\n", vc = vc(gw))
        },
    },
    // A duplicate Content-Length that would smuggle a second request.
    Case {
        name: "dupcl",
        want: Want::Status(400),
        msg: |gw, via| {
            format!(
        "OPTIONS sip:user@{gw} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bKdupcl\r\nFrom: <sip:a@example.com>;tag=d\r\nTo: <sip:user@{gw}>\r\nCall-ID: dupcl@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\nContent-Length: 4\r\n\r\nabcd")
        },
    },
];

/// The status of the first final response in `text` (messages one after another).
fn final_status(text: &str, call_id: &str) -> Option<u16> {
    text.split("SIP/2.0 ")
        .skip(1)
        .filter(|r| call_id.is_empty() || r.contains(call_id))
        .filter_map(|r| r.get(..3)?.parse::<u16>().ok())
        .find(|s| *s >= 200)
}

/// The Call-ID of a torture message (answers are matched by it: retransmitted answers to
/// earlier cases arrive on the same socket).
fn call_id_of(msg: &str) -> String {
    // Without a Call-ID, the top Via's branch identifies the answer.
    msg.lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .or_else(|| msg.split("branch=").nth(1).and_then(|b| b.split("\r\n").next()))
        .map(str::to_string)
        .unwrap_or_default()
}

fn over_udp(gw: &Gateway, sock: &UdpSocket, msg: &str) -> Option<u16> {
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    sock.send_to(msg.as_bytes(), format!("{}:5060", gw.ip)).expect("send");
    let (mut buf, end) = ([0u8; 65_536], Instant::now() + Duration::from_millis(1500));
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            if let Some(s) = final_status(&String::from_utf8_lossy(&buf[..n]), &call_id_of(msg)) {
                return Some(s);
            }
        }
    }
    None
}

fn over_tcp(gw: &Gateway, msg: &str) -> Option<u16> {
    let mut s = TcpStream::connect(format!("{}:5060", gw.ip)).expect("tcp");
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    s.write_all(msg.as_bytes()).expect("write");
    let (mut got, mut buf, end) =
        (String::new(), [0u8; 65_536], Instant::now() + Duration::from_millis(1500));
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
                if let Some(st) = final_status(&got, &call_id_of(msg)) {
                    return Some(st);
                }
            }
            Err(_) => {}
        }
    }
    None
}

#[test]
fn torture_messages_get_their_answers_over_udp_and_tcp() {
    let gw = Gateway::start("127.0.0.104", |c| {
        c.replace("message_timeout_secs = 10", "message_timeout_secs = 1")
    });
    let sock = UdpSocket::bind(format!("{}:0", gw.ip)).expect("udp");
    let udp_via = format!("UDP {}", sock.local_addr().expect("addr"));
    let tcp_via = format!("TCP {}:5999", gw.ip);
    let rss_before = gw.rss_kib();
    let mut failures = Vec::new();
    for case in CASES {
        for (transport, got) in [
            ("UDP", over_udp(&gw, &sock, &(case.msg)(&gw.ip, &udp_via))),
            ("TCP", over_tcp(&gw, &(case.msg)(&gw.ip, &tcp_via))),
        ] {
            // On a stream, a Content-Length beyond the data is a message still arriving:
            // the connection is closed when it does not complete, nothing is answered.
            // So is a Content-Length that cannot be read (negative, or two of them): the
            // stream cannot be delimited, so the connection is closed without an answer.
            let unframable = ["clerr", "ncl", "dupcl"].contains(&case.name);
            let want = if unframable && transport == "TCP" { Want::Silence } else { case.want };
            let ok = match want {
                Want::Status(s) => got == Some(s),
                Want::NotBadRequest => got.is_some_and(|s| s != 400),
                Want::Silence => got.is_none(),
            };
            if !ok {
                failures
                    .push(format!("{} over {transport}: got {got:?}, want {want:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), harness::tail(&gw.log()));
    let ping = format!("OPTIONS sip:ping@{ip} SIP/2.0\r\nVia: SIP/2.0/{udp_via};branch=z9hG4bKafter\r\nFrom: <sip:p@{ip}>;tag=p\r\nTo: <sip:ping@{ip}>\r\nCall-ID: after@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", ip = gw.ip);
    assert_eq!(over_udp(&gw, &sock, &ping), Some(200), "alive after the torture");
    let rss_after = gw.rss_kib();
    eprintln!(
        "torture: {} cases x 2 transports; memory {rss_before} KiB -> {rss_after} KiB",
        CASES.len()
    );
    assert!(rss_after < rss_before + 16 * 1024, "{rss_before} -> {rss_after} KiB");
}
