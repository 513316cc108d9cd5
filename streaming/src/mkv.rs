//! The EBML/Matroska elements a KVS audio stream is made of, written the way the KVS producer
//! library (PIC `mkvgen`) writes them: the Segment and each Cluster of unknown size (the
//! one-byte `0xFF`), one Tags element per tag, fixed 8-byte timecodes.

/// Element IDs (Matroska specification).
pub mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const SEGMENT_UID: u32 = 0x73A4;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const TITLE: u32 = 0x7BA9;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const NAME: u32 = 0x536E;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const BIT_DEPTH: u32 = 0x6264;
    pub const TAGS: u32 = 0x1254_C367;
    pub const TAG: u32 = 0x7373;
    pub const SIMPLE_TAG: u32 = 0x67C8;
    pub const TAG_NAME: u32 = 0x45A3;
    pub const TAG_STRING: u32 = 0x4487;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const POSITION: u32 = 0xA7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
}

/// The tag KVS reads as "this fragment is complete" (written before the stream closes).
pub const END_OF_FRAGMENT: &str = "AWS_KINESISVIDEO_END_OF_FRAGMENT";
/// SimpleBlock flags: a key frame (every PCM block is one).
pub const KEY_FRAME: u8 = 0x80;

/// Writes an element ID (its bytes as the specification gives them).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = (id.leading_zeros() / 8) as usize;
    out.extend_from_slice(&bytes[skip.min(3)..]);
}

/// Writes a data size as the shortest EBML variable-length integer (the all-ones value of each
/// length is reserved for "unknown" and never written for a known size).
pub fn write_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// Writes the ID and the "unknown size" byte of a master element (Segment, Cluster) whose
/// children follow and whose end is implied by the next element of its level.
pub fn write_unknown_master(out: &mut Vec<u8>, id: u32) {
    write_id(out, id);
    out.push(0xFF);
}

/// Writes a master element whose children `body` writes (sizes are known: these are small).
pub fn write_master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    write_bytes(out, id, &inner);
}

/// An unsigned integer in the fewest bytes (at least one).
pub fn write_uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let len = (8 - (v.leading_zeros() / 8) as usize).max(1);
    write_id(out, id);
    write_size(out, len as u64);
    out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

/// An unsigned integer in a fixed 8 bytes (timecodes, as the KVS producer writes them).
pub fn write_uint8(out: &mut Vec<u8>, id: u32, v: u64) {
    write_id(out, id);
    write_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// A 64-bit float.
pub fn write_float(out: &mut Vec<u8>, id: u32, v: f64) {
    write_id(out, id);
    write_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// A string (UTF-8 or ASCII; no terminator).
pub fn write_str(out: &mut Vec<u8>, id: u32, v: &str) {
    write_bytes(out, id, v.as_bytes());
}

/// Binary data.
pub fn write_bytes(out: &mut Vec<u8>, id: u32, v: &[u8]) {
    write_id(out, id);
    write_size(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// The EBML header of a Matroska document.
pub fn write_ebml_header(out: &mut Vec<u8>) {
    write_master(out, id::EBML, |o| {
        write_uint(o, id::EBML_VERSION, 1);
        write_uint(o, id::EBML_READ_VERSION, 1);
        write_uint(o, id::EBML_MAX_ID_LENGTH, 4);
        write_uint(o, id::EBML_MAX_SIZE_LENGTH, 8);
        write_str(o, id::DOC_TYPE, "matroska");
        write_uint(o, id::DOC_TYPE_VERSION, 2);
        write_uint(o, id::DOC_TYPE_READ_VERSION, 2);
    });
}

/// One `Tags` element holding one tag (the KVS producer's layout; no `Targets`).
pub fn write_tag(out: &mut Vec<u8>, name: &str, value: &str) {
    write_master(out, id::TAGS, |o| {
        write_master(o, id::TAG, |o| {
            write_master(o, id::SIMPLE_TAG, |o| {
                write_str(o, id::TAG_NAME, name);
                write_str(o, id::TAG_STRING, value);
            });
        });
    });
}

/// The head of a SimpleBlock on track 1 with a timecode relative to its Cluster; the caller
/// appends `payload_len` bytes of frame data.
pub fn write_simple_block_head(out: &mut Vec<u8>, relative_ms: i16, payload_len: usize) {
    write_id(out, id::SIMPLE_BLOCK);
    write_size(out, 4 + payload_len as u64);
    out.push(0x81); // track number 1 as a one-byte vint
    out.extend_from_slice(&relative_ms.to_be_bytes());
    out.push(KEY_FRAME);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sizes_are_encoded_as_ebml_says() {
        let mut o = Vec::new();
        write_id(&mut o, id::EBML);
        write_id(&mut o, id::TRACK_ENTRY);
        write_id(&mut o, id::TIMECODE_SCALE);
        assert_eq!(o, [0x1A, 0x45, 0xDF, 0xA3, 0xAE, 0x2A, 0xD7, 0xB1]);
        let size = |n| {
            let mut o = Vec::new();
            write_size(&mut o, n);
            o
        };
        assert_eq!(size(0), [0x80]);
        assert_eq!(size(126), [0xFE]);
        assert_eq!(size(127), [0x40, 0x7F], "0xFF would mean unknown");
        assert_eq!(size(324), [0x41, 0x44]);
        assert_eq!(size(16382), [0x7F, 0xFE]);
        assert_eq!(size(16383), [0x20, 0x3F, 0xFF]);
    }

    #[test]
    fn integers_take_the_fewest_bytes_and_timecodes_eight() {
        let mut o = Vec::new();
        write_uint(&mut o, id::TRACK_NUMBER, 1);
        write_uint(&mut o, id::TIMECODE_SCALE, 1_000_000);
        write_uint(&mut o, id::POSITION, 0);
        assert_eq!(
            o,
            [0xD7, 0x81, 0x01, 0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40, 0xA7, 0x81, 0x00]
        );
        let mut o = Vec::new();
        write_uint8(&mut o, id::TIMECODE, 0x0102);
        assert_eq!(o, [0xE7, 0x88, 0, 0, 0, 0, 0, 0, 0x01, 0x02]);
    }

    #[test]
    fn a_tag_is_one_tags_element_with_one_simple_tag() {
        let mut o = Vec::new();
        write_tag(&mut o, "CallId", "x");
        assert_eq!(
            o,
            [
                0x12, 0x54, 0xC3, 0x67, 0x93, // Tags, 19 bytes
                0x73, 0x73, 0x90, // Tag, 16
                0x67, 0xC8, 0x8D, // SimpleTag, 13
                0x45, 0xA3, 0x86, b'C', b'a', b'l', b'l', b'I', b'd', // TagName
                0x44, 0x87, 0x81, b'x', // TagString
            ]
        );
    }

    #[test]
    fn a_simple_block_head_names_track_one_a_key_frame_and_its_timecode() {
        let mut o = Vec::new();
        write_simple_block_head(&mut o, 40, 320);
        assert_eq!(o, [0xA3, 0x41, 0x44, 0x81, 0x00, 0x28, 0x80]);
    }
}
