//! Sample SIP traffic and the process figures shared by the benchmarks.

/// A typical termination INVITE from a PBX, with SDP.
pub const INVITE: &str = "INVITE sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1-inv-4242;rport\r\n\
From: \"PBX\" <sip:+12065550100@127.0.0.1:5090>;tag=4242SIPpTag001\r\n\
To: <sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local>\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:pbx@127.0.0.1:5090;transport=udp>\r\n\
Max-Forwards: 70\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO\r\n\
Supported: timer, replaces\r\n\
User-Agent: Example-PBX/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 190\r\n\r\n\
v=0\r\no=pbx 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n";

/// A 200 OK with two Via values and Record-Route.
pub const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy1;received=10.0.0.1, SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1-inv-4242;rport=5090\r\n\
Record-Route: <sip:10.0.0.1;lr>\r\n\
From: \"PBX\" <sip:+12065550100@127.0.0.1:5090>;tag=4242SIPpTag001\r\n\
To: <sip:+12065550101@abcdef1ghij2klmno3pqr4.voiceconnector.local>;tag=carrier-77\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:carrier@10.0.0.9:5080>\r\n\
Content-Length: 0\r\n\r\n";

/// user+system CPU ticks and resident memory (KiB) of a process.
pub fn proc_usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

/// The `p` quantile (0–1) of sorted values; 0 when there are none.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
