//! The PutMedia acknowledgement parser: any response body, cut anywhere, gives the same
//! acknowledgements and errors as in one piece, and never a panic or an unbounded buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streaming::ack::AckParser;

fn parse(pieces: &[&[u8]]) -> Vec<String> {
    let mut p = AckParser::new();
    let mut got = Vec::new();
    for piece in pieces {
        p.feed(piece, &mut |a| got.push(format!("{a:?}")));
    }
    p.finish(&mut |a| got.push(format!("{a:?}")));
    got
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else { return };
    let whole = parse(&[body]);
    // Cut into pieces of `cut % 17 + 1` bytes: the same result.
    let pieces: Vec<&[u8]> = body.chunks(cut as usize % 17 + 1).collect();
    assert_eq!(whole, parse(&pieces));
});
