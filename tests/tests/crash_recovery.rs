//! `kill -9` with calls up: the restart finds them in the CDR journal, records them as
//! interrupted and hangs up both legs with the BYEs journaled at their answer, so neither the
//! carrier nor the PBX keeps a call that nobody relays any more. SIPp plays both (the PBX
//! waits for a BYE, the carrier too).

use std::time::{Duration, Instant};

use harness::{carrier_args, check_cdr, pbx_args, require, strs, Gateway, Sipp};

const VC: &str = "abcdef1ghij2klmno3pqr4";

#[test]
fn after_kill_9_both_legs_of_cut_calls_get_a_bye() {
    if !require("sipp") {
        return;
    }
    let mut gw = Gateway::start("127.0.0.103", |c| c);
    let mut c = carrier_args(&gw.ip);
    c.extend(["-m", "3"].map(String::from));
    let carrier = Sipp::spawn(&gw.dir, "carrier", "carrier_answer.xml", &strs(&c));
    let mut p = pbx_args(&gw.ip);
    p.extend(["-m", "3", "-r", "10"].map(String::from));
    let pbx = Sipp::spawn(&gw.dir, "pbx", "pbx_callee_bye.xml", &strs(&p));
    let start = Instant::now();
    while gw.metric("voicegw_outbound_calls_answered_total", VC) < 3.0
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gw.metric("voicegw_outbound_calls_answered_total", VC), 3.0, "{}", gw.log());
    std::thread::sleep(Duration::from_millis(300));
    gw.kill9();
    gw.restart();
    let (pbx, carrier) = (pbx.wait(Duration::from_secs(15)), carrier.wait(Duration::from_secs(15)));
    assert_eq!(pbx.successful, 3, "the PBX got a BYE for each call: {pbx:#?}\n{}", gw.log());
    assert_eq!(carrier.successful, 3, "the carrier too: {carrier:#?}\n{}", gw.log());
    assert!(gw.log().contains("ending the call legs the previous run left up"), "{}", gw.log());
    let cdrs = gw.cdrs(3, Duration::from_secs(10));
    assert_eq!(cdrs.len(), 3);
    for (k, v) in &cdrs {
        check_cdr(k, v);
        assert!(v["StatusMessage"].as_str().unwrap_or("").starts_with("Interrupted"), "{v}");
    }
}
