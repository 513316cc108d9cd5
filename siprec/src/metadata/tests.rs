//! The shapes recording clients send, written for these tests after RFC 7865, RFC 8068's call
//! flows and vendors' public documentation (identifiers and names are made up).

use super::*;

/// RFC 7865's shape, as in RFC 8068's basic call: two participants, two streams, the
/// send/recv associations apart.
const RFC7865: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <group group_id="7+OTCyoxTmqmqyA/1weDAg==">
    <associate-time>2026-12-07T10:00:00Z</associate-time>
  </group>
  <session session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID>
    <group-ref>7+OTCyoxTmqmqyA/1weDAg==</group-ref>
    <start-time>2026-12-07T10:00:00Z</start-time>
  </session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:alice@atlanta.example.com">
      <name xml:lang="en">Alice &amp; Co</name>
    </nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="sip:bob@biloxi.example.com">
      <name xml:lang="en">Bob</name>
    </nameID>
  </participant>
  <participantsessionassoc participant_id="srfBElmCRp2QB23b7Mpk0w==" session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <associate-time>2026-12-07T10:00:00Z</associate-time>
  </participantsessionassoc>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <label>96</label>
  </stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="hVpd7YQgRW2nD22h7q60JQ==">
    <label>97</label>
  </stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>i1Pz3to5hGk8fuXl+PbwCw==</send>
    <recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send>
    <recv>i1Pz3to5hGk8fuXl+PbwCw==</recv>
  </participantstreamassoc>
</recording>"#;

/// The earlier draft's shape that SBCs (Acme Packet / Oracle among them) still send: `id` and
/// `session` attributes, send/recv inside the participant, the draft namespace.
const DRAFT: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<recording xmlns='urn:ietf:params:xml:ns:recording'>
  <datamode>complete</datamode>
  <session id="0xab2c">
    <start-time>2026-12-07T10:00:00</start-time>
  </session>
  <participant id="p1" session="0xab2c">
    <nameID aor="sip:+12065550100@pbx.example.com"><name>+12065550100</name></nameID>
    <send>s1</send>
    <recv>s2</recv>
  </participant>
  <participant id="p2" session="0xab2c">
    <nameID aor="sip:+12065550101@carrier.example.net"/>
    <send>s2</send>
    <recv>s1</recv>
  </participant>
  <stream id="s1" session="0xab2c"><label>1</label></stream>
  <stream id="s2" session="0xab2c"><label>2</label></stream>
</recording>"#;

/// A prefixed namespace and vendor extension data (as Cisco CUBE and BroadWorks add their
/// own elements), one mixed stream.
const PREFIXED: &str = r#"<rs:recording xmlns:rs="urn:ietf:params:xml:ns:recording:1" xmlns:ext="http://vendor.example/siprec">
  <rs:datamode>complete</rs:datamode>
  <rs:session session_id="c2Vzc2lvbg==">
    <rs:sipSessionID>00000000000000000000000000000001;remote=00000000000000000000000000000002</rs:sipSessionID>
    <rs:extensiondata><ext:callid>8a1c@10.0.0.1</ext:callid></rs:extensiondata>
  </rs:session>
  <rs:participant participant_id="cA==">
    <rs:nameID aor="tel:+12065550100"><rs:name><![CDATA[Front <desk>]]></rs:name></rs:nameID>
  </rs:participant>
  <rs:stream stream_id="bWl4ZWQ=" session_id="c2Vzc2lvbg=="><rs:label>mixed</rs:label></rs:stream>
  <rs:participantstreamassoc participant_id="cA=="><rs:send>bWl4ZWQ=</rs:send></rs:participantstreamassoc>
  <ext:vendor-state>on hold</ext:vendor-state>
</rs:recording>"#;

#[test]
fn rfc_7865_is_read_with_its_associations_and_entities() {
    let m = Metadata::parse(RFC7865.as_bytes()).expect("parsed");
    assert_eq!(m.mode, DataMode::Complete);
    assert!(m.tolerated.is_empty(), "{:?}", m.tolerated);
    assert_eq!(m.sessions.len(), 1);
    let s = &m.sessions[0];
    assert_eq!(s.id, "hVpd7YQgRW2nD22h7q60JQ==");
    assert_eq!(s.start_time.as_deref(), Some("2026-12-07T10:00:00Z"));
    assert!(s.sip_session_ids[0].starts_with("ab30317f"));
    assert_eq!(m.participants.len(), 2);
    let alice = &m.participants[0];
    assert_eq!(alice.name.as_deref(), Some("Alice & Co"));
    assert_eq!(alice.aor.as_deref(), Some("sip:alice@atlanta.example.com"));
    assert_eq!(
        (alice.send.as_slice(), alice.recv.as_slice()),
        (
            &["i1Pz3to5hGk8fuXl+PbwCw==".to_string()][..],
            &["UAAMm5GRQKSCMVvLyl4rFw==".to_string()][..]
        )
    );
    let by_label = m.stream_by_label("96").expect("label 96");
    let senders: Vec<&str> =
        m.senders_of(&by_label.id).map(|p| p.name.as_deref().unwrap_or("")).collect();
    assert_eq!(senders, ["Bob"], "the stream labelled 96 is Bob's");
    let j = m.to_json();
    assert_eq!(j["streams"][0]["senders"][0], "zSfPoSvdSDCmU3A3TRDxAw==");
    assert_eq!(j["streams"][0]["receivers"][0], "srfBElmCRp2QB23b7Mpk0w==");
    assert_eq!(j["participants"][1]["aor"], "sip:bob@biloxi.example.com");
    assert_eq!(j["dataMode"], "complete");
}

#[test]
fn the_drafts_shape_is_read_and_what_was_tolerated_is_said() {
    let m = Metadata::parse(DRAFT.as_bytes()).expect("parsed");
    assert_eq!(
        m.tolerated,
        [Tolerated::DraftNamespace, Tolerated::DraftAttributes, Tolerated::SendRecvInParticipant]
    );
    assert_eq!(m.participants.len(), 2);
    assert_eq!(m.participants[1].name, None);
    assert_eq!(m.participants[1].aor.as_deref(), Some("sip:+12065550101@carrier.example.net"));
    assert_eq!(m.streams[0].session.as_deref(), Some("0xab2c"));
    let s2 = m.stream_by_label("2").expect("label 2");
    assert_eq!(m.senders_of(&s2.id).map(|p| p.id.as_str()).collect::<Vec<_>>(), ["p2"]);
}

/// The draft's shape as an Oracle (Acme Packet) SBC's documentation shows it: `dataMode`,
/// `<aor>` and `<name>` right in the participant, a `<mode>` in the stream, times per element.
const ORACLE_STYLE: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<recording xmlns='urn:ietf:params:xml:ns:recording'>
  <dataMode>complete</dataMode>
  <session id="urn:uuid:0d2b5c6a-1111-4c3b-8d2e-aaaaaaaaaaaa"><start-time>2026-12-07T10:00:00</start-time></session>
  <participant id="urn:uuid:0d2b5c6a-2222-4c3b-8d2e-aaaaaaaaaaaa" session="urn:uuid:0d2b5c6a-1111-4c3b-8d2e-aaaaaaaaaaaa">
    <aor>sip:alice@192.0.2.40</aor>
    <name>alice </name>
    <send>urn:uuid:0d2b5c6a-4444-4c3b-8d2e-aaaaaaaaaaaa</send>
    <start-time>2026-12-07T10:00:00</start-time>
  </participant>
  <participant id="urn:uuid:0d2b5c6a-3333-4c3b-8d2e-aaaaaaaaaaaa" session="urn:uuid:0d2b5c6a-1111-4c3b-8d2e-aaaaaaaaaaaa">
    <aor>sip:bob@192.0.2.60</aor>
    <name>bob </name>
  </participant>
  <stream id="urn:uuid:0d2b5c6a-4444-4c3b-8d2e-aaaaaaaaaaaa" session="urn:uuid:0d2b5c6a-1111-4c3b-8d2e-aaaaaaaaaaaa">
    <mode>separate</mode>
    <start-time>2026-12-07T10:00:00</start-time>
    <label>1</label>
  </stream>
</recording>"#;

#[test]
fn the_oracle_style_draft_shape_gives_names_and_addresses() {
    let m = Metadata::parse(ORACLE_STYLE.as_bytes()).expect("parsed");
    assert_eq!(m.participants.len(), 2);
    assert_eq!(m.participants[0].aor.as_deref(), Some("sip:alice@192.0.2.40"));
    assert_eq!(m.participants[0].name.as_deref(), Some("alice"));
    let s = m.stream_by_label("1").expect("label 1");
    assert_eq!(
        m.senders_of(&s.id).map(|p| p.aor.as_deref().unwrap_or("")).collect::<Vec<_>>(),
        ["sip:alice@192.0.2.40"]
    );
    assert!(m.tolerated.contains(&Tolerated::DraftNamespace));
}

#[test]
fn prefixes_cdata_and_vendor_extensions_are_taken() {
    let m = Metadata::parse(PREFIXED.as_bytes()).expect("parsed");
    assert_eq!(m.tolerated, [Tolerated::UnknownElements], "the vendor's top-level element");
    assert_eq!(m.participants[0].name.as_deref(), Some("Front <desk>"));
    assert_eq!(m.participants[0].aor.as_deref(), Some("tel:+12065550100"));
    assert_eq!(m.stream_by_label("mixed").map(|s| s.id.as_str()), Some("bWl4ZWQ="));
    assert_eq!(m.sessions[0].sip_session_ids.len(), 1);
}

#[test]
fn a_partial_update_changes_what_it_names_and_keeps_the_rest() {
    let mut state = Metadata::parse(RFC7865.as_bytes()).expect("parsed");
    let update = r#"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
      <datamode>partial</datamode>
      <session session_id="hVpd7YQgRW2nD22h7q60JQ=="><stop-time>2026-12-07T10:05:00Z</stop-time></session>
      <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><nameID aor="sip:carol@biloxi.example.com"><name>Carol</name></nameID></participant>
      <participant participant_id="bmV3"><nameID aor="sip:dave@example.com"/></participant>
    </recording>"#;
    let u = Metadata::parse(update.as_bytes()).expect("parsed");
    assert_eq!(u.mode, DataMode::Partial);
    state.merge(u);
    let s = &state.sessions[0];
    assert_eq!(
        (s.start_time.as_deref(), s.stop_time.as_deref()),
        (Some("2026-12-07T10:00:00Z"), Some("2026-12-07T10:05:00Z"))
    );
    assert_eq!(state.participants.len(), 3);
    let transferred = &state.participants[1];
    assert_eq!(transferred.name.as_deref(), Some("Carol"));
    assert_eq!(transferred.send, ["UAAMm5GRQKSCMVvLyl4rFw=="], "its streams are kept");
    assert_eq!(state.streams.len(), 2);
    // A complete document replaces everything.
    state.merge(Metadata::parse(DRAFT.as_bytes()).expect("parsed"));
    assert_eq!(state.participants[0].id, "p1");
    assert_eq!(state.participants.len(), 2);
}

#[test]
fn hostile_documents_are_refused_with_a_reason() {
    let doctype =
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "xxxxxxxx">]><recording>&x;</recording>"#;
    assert_eq!(Metadata::parse(doctype.as_bytes()), Err(MetadataError::DocType));
    let deep = format!("<recording>{}{}</recording>", "<a>".repeat(40), "</a>".repeat(40));
    assert_eq!(Metadata::parse(deep.as_bytes()), Err(MetadataError::TooDeep));
    let many: String = (0..70).map(|i| format!("<participant participant_id='p{i}'/>")).collect();
    let many = format!("<recording>{many}</recording>");
    assert_eq!(Metadata::parse(many.as_bytes()), Err(MetadataError::TooMany("participants")));
    assert_eq!(Metadata::parse(&[0x3c, 0xff, 0xfe]), Err(MetadataError::NotUtf8));
    let big = vec![b' '; MAX_DOCUMENT + 1];
    assert_eq!(Metadata::parse(&big), Err(MetadataError::TooLarge(MAX_DOCUMENT + 1)));
    assert_eq!(Metadata::parse(b"<other/>"), Err(MetadataError::NotRecording));
    assert!(matches!(
        Metadata::parse(b"<recording><a></b></recording>"),
        Err(MetadataError::Xml(_))
    ));
    assert!(matches!(
        Metadata::parse(b"<recording>&unknown;</recording>"),
        Err(MetadataError::Xml(_))
    ));
    // Long values are cut, not refused.
    let long = format!("<recording><participant participant_id='p'><nameID aor='sip:x'><name>{}</name></nameID></participant></recording>", "é".repeat(2000));
    let m = Metadata::parse(long.as_bytes()).expect("parsed");
    let name = m.participants[0].name.as_deref().unwrap_or_default();
    assert!(name.len() <= MAX_TEXT && name.chars().all(|c| c == 'é'), "{}", name.len());
    // Elements without their identifier are skipped and said.
    let m = Metadata::parse(b"<recording><stream><label>1</label></stream></recording>")
        .expect("parsed");
    assert!(m.streams.is_empty() && m.tolerated.contains(&Tolerated::MissingId));
}
