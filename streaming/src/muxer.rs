//! One call leg's PCM as a live Matroska stream in KVS's shape (formats.md §9): the EBML
//! header, a Segment of unknown size with Info (1 ms timecode scale) and one
//! `A_PCM/INT/LIT` 8 kHz mono 16-bit track; then, for each fragment, the persistent tags
//! (`TransactionId`, `VoiceConnectorId`, `CallId`, …), one Tags element each, and a Cluster of
//! unknown size with its absolute timecode (epoch milliseconds) and 20 ms key-frame
//! SimpleBlocks. [`Muxer::finish`] ends the last fragment with the end-of-fragment tag.
//!
//! Timecodes come from the sample count alone (`start + samples / 8` ms), so they are as
//! continuous as the PCM the jitter buffer hands in. The stream head (EBML header, Segment,
//! Info, Tracks) is written on demand ([`Muxer::write_header`]): once at the top of a local
//! file, and at the start of every PutMedia connection. The fragments accumulate in an output
//! buffer that the driver takes, whole ([`Muxer::take_output`]) or split where fragments begin
//! ([`Muxer::take_chunks`], so an uploader can keep unacknowledged fragments for a new
//! connection).

use crate::jitter::RATE;
use crate::mkv::{self, id};

/// Samples in one SimpleBlock: 20 ms.
pub const BLOCK_SAMPLES: usize = 160;

/// What a stream is: its tags, its track's name, its identity and its fragment length.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Persistent tags repeated before every fragment, in this order. Names must not start
    /// with `AWS` (KVS reserves them); [`Muxer::new`] refuses them.
    pub tags: Vec<(String, String)>,
    /// The track's `Name`, if any.
    pub track_name: Option<String>,
    /// The Segment's UID (16 random bytes from the caller).
    pub segment_uid: [u8; 16],
    /// Blocks per fragment: 20 ms each, 1–500 (KVS takes fragments of 1 to 10 s; fewer than
    /// 50 is for tests).
    pub blocks_per_fragment: u32,
    /// The muxer's name and version, for `MuxingApp`/`WritingApp`.
    pub app: String,
}

/// Why a stream cannot be muxed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("tag name {0:?} is reserved (KVS tag names may not start with \"AWS\")")]
    ReservedTag(String),
    #[error("tag {name:?} is too long for KVS (names up to 128 bytes, values up to 256)")]
    TagTooLong { name: String },
    #[error("KVS takes at most 10 tags per fragment; {0} were given")]
    TooManyTags(usize),
    #[error("a fragment must hold 1 to 500 blocks of 20 ms; {0} was given")]
    FragmentLength(u32),
}

/// The muxer of one stream. See the module documentation.
pub struct Muxer {
    info: StreamInfo,
    /// Epoch milliseconds of the first sample.
    start_ms: u64,
    /// Samples muxed so far (complete blocks) and the block being filled.
    samples: u64,
    block: [i16; BLOCK_SAMPLES],
    filled: usize,
    /// The open Cluster's timecode and how many blocks it holds.
    cluster: Option<(u64, u32)>,
    fragments: u64,
    out: Vec<u8>,
    /// Where in `out` each fragment not yet taken begins, and its timecode.
    starts: Vec<(usize, u64)>,
}

/// A piece of the muxer's output: `fragment` is the timecode of the fragment that begins with
/// these bytes, or `None` if they continue the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub fragment: Option<u64>,
    pub bytes: &'a [u8],
}

impl Muxer {
    /// A stream whose first sample is at `start_ms` (epoch milliseconds).
    pub fn new(info: StreamInfo, start_ms: u64) -> Result<Muxer, MuxError> {
        if info.tags.len() > 9 {
            // The end-of-fragment tag is the tenth.
            return Err(MuxError::TooManyTags(info.tags.len()));
        }
        for (name, value) in &info.tags {
            if name.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("AWS")) {
                return Err(MuxError::ReservedTag(name.clone()));
            }
            if name.is_empty() || name.len() > 128 || value.len() > 256 {
                return Err(MuxError::TagTooLong { name: name.clone() });
            }
        }
        if !(1..=500).contains(&info.blocks_per_fragment) {
            return Err(MuxError::FragmentLength(info.blocks_per_fragment));
        }
        let m = Muxer {
            info,
            start_ms,
            samples: 0,
            block: [0; BLOCK_SAMPLES],
            filled: 0,
            cluster: None,
            fragments: 0,
            out: Vec::with_capacity(4096),
            starts: Vec::new(),
        };
        Ok(m)
    }

    /// Fragments (Clusters) started so far.
    pub fn fragments(&self) -> u64 {
        self.fragments
    }

    /// Milliseconds of audio muxed (complete blocks).
    pub fn duration_ms(&self) -> u64 {
        self.samples * 1000 / RATE
    }

    /// Bytes written and not yet taken.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Moves the bytes written so far to the end of `into` (a buffer the caller reuses).
    pub fn take_output(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.out);
        self.starts.clear();
    }

    /// Hands the bytes written so far to `f`, split where fragments begin, and forgets them.
    pub fn take_chunks(&mut self, mut f: impl FnMut(Chunk<'_>)) {
        let mut at = 0;
        for &(start, tc) in &self.starts {
            if start > at {
                f(Chunk { fragment: None, bytes: &self.out[at..start] });
            }
            let end = self.next_start(start);
            f(Chunk { fragment: Some(tc), bytes: &self.out[start..end] });
            at = end;
        }
        if at < self.out.len() {
            f(Chunk { fragment: None, bytes: &self.out[at..] });
        }
        self.out.clear();
        self.starts.clear();
    }

    /// Where the fragment after the one beginning at `start` begins (or the output's end).
    fn next_start(&self, start: usize) -> usize {
        self.starts.iter().map(|&(s, _)| s).find(|&s| s > start).unwrap_or(self.out.len())
    }

    /// Takes PCM samples; each complete 20 ms block is written at once.
    pub fn pcm(&mut self, mut samples: &[i16]) {
        while !samples.is_empty() {
            if self.filled == 0 && samples.len() >= BLOCK_SAMPLES {
                // Whole blocks straight from the input (20 ms packets in order: the usual
                // case), without going through the block buffer.
                let (block, rest) = samples.split_at(BLOCK_SAMPLES);
                self.write_block(block);
                samples = rest;
                continue;
            }
            let k = (BLOCK_SAMPLES - self.filled).min(samples.len());
            self.block[self.filled..self.filled + k].copy_from_slice(&samples[..k]);
            self.filled += k;
            samples = &samples[k..];
            if self.filled == BLOCK_SAMPLES {
                self.write_buffered_block();
            }
        }
    }

    /// Writes the block buffer (whole, or the last partial block) and empties it.
    fn write_buffered_block(&mut self) {
        let block = self.block;
        let n = self.filled;
        self.filled = 0;
        self.write_block(&block[..n]);
    }

    /// Ends the stream: the last partial block, then the end-of-fragment tag.
    pub fn finish(&mut self) {
        if self.filled > 0 {
            self.write_buffered_block();
        }
        self.end_fragment();
    }

    /// Ends the open fragment with the end-of-fragment tag, as a PutMedia connection must end
    /// (rotation); the next block begins a new fragment on the same timeline.
    pub fn end_fragment(&mut self) {
        if self.cluster.take().is_some() {
            mkv::write_tag(&mut self.out, mkv::END_OF_FRAGMENT, "");
        }
    }

    /// Writes the stream head (EBML header, Segment, Info, Tracks) to `o`.
    pub fn write_header(&self, o: &mut Vec<u8>) {
        mkv::write_ebml_header(o);
        mkv::write_unknown_master(o, id::SEGMENT);
        let info = &self.info;
        mkv::write_master(o, id::INFO, |o| {
            mkv::write_bytes(o, id::SEGMENT_UID, &info.segment_uid);
            mkv::write_uint(o, id::TIMECODE_SCALE, 1_000_000);
            mkv::write_str(o, id::TITLE, "voicegw call audio");
            mkv::write_str(o, id::MUXING_APP, &info.app);
            mkv::write_str(o, id::WRITING_APP, &info.app);
        });
        mkv::write_master(o, id::TRACKS, |o| {
            mkv::write_master(o, id::TRACK_ENTRY, |o| {
                mkv::write_uint(o, id::TRACK_NUMBER, 1);
                mkv::write_uint(o, id::TRACK_UID, 1);
                mkv::write_uint(o, id::TRACK_TYPE, 2);
                mkv::write_str(o, id::CODEC_ID, "A_PCM/INT/LIT");
                if let Some(name) = &info.track_name {
                    mkv::write_str(o, id::NAME, name);
                }
                mkv::write_master(o, id::AUDIO, |o| {
                    mkv::write_float(o, id::SAMPLING_FREQUENCY, RATE as f64);
                    mkv::write_uint(o, id::CHANNELS, 1);
                    mkv::write_uint(o, id::BIT_DEPTH, 16);
                });
            });
        });
    }

    /// Writes `block` (at most one block of samples) as a SimpleBlock, in a new fragment when
    /// the open one is full.
    fn write_block(&mut self, block: &[i16]) {
        let n = block.len();
        let block_ms = self.start_ms + self.samples * 1000 / RATE;
        let (cluster_ms, blocks) = match self.cluster {
            Some((tc, b)) if b < self.info.blocks_per_fragment => (tc, b),
            _ => {
                // A new fragment (the first, or the open one is full): its tags, then a
                // Cluster of unknown size, which ends where the next level-1 element begins.
                self.starts.push((self.out.len(), block_ms));
                for (name, value) in &self.info.tags {
                    mkv::write_tag(&mut self.out, name, value);
                }
                mkv::write_unknown_master(&mut self.out, id::CLUSTER);
                mkv::write_uint8(&mut self.out, id::TIMECODE, block_ms);
                mkv::write_uint(&mut self.out, id::POSITION, 0);
                self.fragments += 1;
                (block_ms, 0)
            }
        };
        // At most 500 blocks of 20 ms after the cluster's start: within i16 milliseconds.
        let relative = i16::try_from(block_ms - cluster_ms).unwrap_or(i16::MAX);
        mkv::write_simple_block_head(&mut self.out, relative, n * 2);
        // One resize and a tight loop (the compiler vectorises it), not an `extend` per sample.
        let at = self.out.len();
        self.out.resize(at + n * 2, 0);
        for (dst, s) in self.out[at..].chunks_exact_mut(2).zip(block) {
            dst.copy_from_slice(&s.to_le_bytes());
        }
        self.cluster = Some((cluster_ms, blocks + 1));
        self.samples += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(blocks: u32) -> StreamInfo {
        StreamInfo {
            tags: vec![
                ("TransactionId".into(), "tx-1".into()),
                ("VoiceConnectorId".into(), "vc".into()),
                ("CallId".into(), "c@h".into()),
            ],
            track_name: Some("AUDIO".into()),
            segment_uid: [7; 16],
            blocks_per_fragment: blocks,
            app: "voicegw test".into(),
        }
    }

    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    #[test]
    fn fragments_carry_their_tags_and_absolute_timecodes() {
        let mut m = Muxer::new(info(50), 1_700_000_000_000).expect("muxer");
        m.pcm(&vec![1i16; 8000 * 3 + 80]); // 3 s and half a block
        m.finish();
        let mut out = Vec::new();
        m.write_header(&mut out);
        m.take_output(&mut out);
        assert_eq!(m.pending(), 0);
        assert_eq!(m.fragments(), 4, "3 full fragments of 1 s and the last half block");
        assert_eq!(count(&out, &[0x1F, 0x43, 0xB6, 0x75, 0xFF]), 4, "unknown-size Clusters");
        assert_eq!(count(&out, b"TransactionId"), 4, "tags before every Cluster");
        assert_eq!(count(&out, mkv::END_OF_FRAGMENT.as_bytes()), 1);
        assert_eq!(count(&out, &[0xA3, 0x41, 0x44, 0x81]), 150, "20 ms blocks");
        for (k, tc) in [0u64, 1000, 2000, 3000].iter().enumerate() {
            let mut want = vec![0xE7, 0x88];
            want.extend_from_slice(&(1_700_000_000_000 + tc).to_be_bytes());
            assert_eq!(count(&out, &want), 1, "fragment {k}");
        }
        // The partial block: 80 samples.
        assert_eq!(count(&out, &[0xA3, 0x40, 0xA4, 0x81, 0, 0, 0x80]), 1);
        assert_eq!(m.duration_ms(), 3010);
    }

    #[test]
    fn ending_a_fragment_for_rotation_keeps_the_timeline_and_chunks_split_at_fragments() {
        let mut m = Muxer::new(info(5), 0).expect("muxer");
        let mut head = Vec::new();
        m.write_header(&mut head);
        assert_eq!(count(&head, &[0x18, 0x53, 0x80, 0x67, 0xFF]), 1, "a Segment of unknown size");
        assert_eq!(count(&head, b"A_PCM/INT/LIT"), 1);
        m.pcm(&[0; 1600]); // 10 blocks: 2 fragments of 5
        m.end_fragment();
        m.pcm(&[0; 160]);
        m.finish();
        let mut chunks = Vec::new();
        m.take_chunks(|c| chunks.push((c.fragment, c.bytes.to_vec())));
        let starts: Vec<Option<u64>> = chunks.iter().map(|c| c.0).collect();
        assert_eq!(starts, [Some(0), Some(100), Some(200)]);
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(count(&all, mkv::END_OF_FRAGMENT.as_bytes()), 2);
        assert_eq!(count(&chunks[2].1, b"TransactionId"), 1, "each chunk starts with its tags");
        assert!(chunks[2].1.starts_with(&[0x12, 0x54, 0xC3, 0x67]));
        let mut later = Vec::new();
        m.take_chunks(|c| later.push(c.bytes.len()));
        assert!(later.is_empty(), "taken once");
    }

    #[test]
    fn reserved_long_and_too_many_tags_are_refused() {
        let mut i = info(50);
        i.tags.push(("AWS_X".into(), "1".into()));
        assert_eq!(Muxer::new(i, 0).err(), Some(MuxError::ReservedTag("AWS_X".into())));
        let mut i = info(50);
        i.tags.push(("n".into(), "v".repeat(257)));
        assert!(matches!(Muxer::new(i, 0), Err(MuxError::TagTooLong { .. })));
        let mut i = info(50);
        i.tags = (0..10).map(|k| (format!("t{k}"), String::new())).collect();
        assert_eq!(Muxer::new(i, 0).err(), Some(MuxError::TooManyTags(10)));
        assert_eq!(Muxer::new(info(0), 0).err(), Some(MuxError::FragmentLength(0)));
    }
}
