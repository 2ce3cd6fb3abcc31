//! How case documents and event details sit on disk: their JSON, compressed with zstd
//! against a dictionary.
//!
//! A record is small (a case document ~1.6 KB, an event's details ~270 bytes) and most of it
//! is structure every record shares: keys, enum values, the shape of timestamps and codes.
//! Compressed alone, such a record barely shrinks; against a dictionary trained on that
//! structure a document shrinks about 3.5× and details about 4× (the free text is what is
//! left). At province scale that is most of the database.
//!
//! A stored value is a BLOB: one tag byte naming the format (the dictionary set and the
//! framing), then a zstd frame. Values written before compression are TEXT holding the JSON
//! itself and are read as they are. The dictionaries (`dict/{case,event}-N.zdict`, trained
//! by `scripts/train-dicts.py`) are part of the format: a set, once released, must never
//! change, and neither may what a tag means — a new format gets the next tag and the old
//! ones stay here for reading.
//!
//! | tag | dictionaries | frame |
//! |---|---|---|
//! | 1 | set 1 | a whole zstd frame |
//! | 2 | set 1 | the frame without zstd's 4-byte magic number and without the dictionary's id |
//!
//! Tag 2 leaves out what the tag already says: 8 of a record's bytes, which for the small
//! records here (an event's details are often 20–60 bytes stored) is ~60 bytes a case. The
//! magic is put back before decoding, so the frames stay standard zstd.
//!
//! Hashes (the event chain) are taken over the JSON, never over the compressed bytes, so the
//! encoding can change without touching the chain.

use std::cell::RefCell;
use std::sync::LazyLock;

use gridloop_store::{Result, StoreError};
use rusqlite::types::ValueRef;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// What a value is; each kind has its own dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Case,
    Event,
}

/// Tag 1: a whole zstd frame against dictionary set 1 (values written until schema 18; tag 2 since migration 0019).
const SET_1: u8 = 1;
/// Tag 2: dictionary set 1, the frame stored without its magic number and dictionary id.
const SET_1_BARE: u8 = 2;
/// The tag new values are written with.
const CURRENT: u8 = SET_1_BARE;
/// The first four bytes of every zstd frame, which tag 2 does not store.
const ZSTD_MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
/// zstd's default level: on records this small, higher levels gain a few per cent for
/// several times the time.
const LEVEL: i32 = 3;

static CASE_1: &[u8] = include_bytes!("../dict/case-1.zdict");
static EVENT_1: &[u8] = include_bytes!("../dict/event-1.zdict");

static ENCODE_CASE: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(CASE_1, LEVEL));
static ENCODE_EVENT: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(EVENT_1, LEVEL));
static DECODE_CASE: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(CASE_1));
static DECODE_EVENT: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(EVENT_1));

// One zstd context per thread and kind: contexts are costly to create and not shareable.
thread_local! {
    static COMPRESSORS: RefCell<Option<Compressors>> = const { RefCell::new(None) };
    static DECOMPRESSORS: RefCell<Option<[Decompressor<'static>; 2]>> = const { RefCell::new(None) };
    /// Where a tag-2 frame gets its magic number back before it is decoded.
    static WHOLE_FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

/// A thread's compression contexts, one per kind, and the buffer frames are made in.
struct Compressors {
    kinds: [Compressor<'static>; 2],
    /// Reused for every frame: a value is compressed here at its worst-case size, then
    /// copied out at its own (one allocation of the right size per value, where
    /// compressing into a fresh buffer took two and a copy).
    frame: Vec<u8>,
}

/// A reused buffer larger than this after a record is freed rather than kept by its thread.
const SCRATCH_KEPT: usize = 256 * 1024;

/// Frees a thread's reused buffer if one outsized record grew it past [`SCRATCH_KEPT`].
pub(crate) fn let_go_if_large(buf: &mut Vec<u8>) {
    if buf.capacity() > SCRATCH_KEPT {
        *buf = Vec::new();
    }
}

/// The stored form of a JSON value: the tag, then the frame.
pub(crate) fn compress(kind: Kind, json: &[u8]) -> Result<Vec<u8>> {
    COMPRESSORS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            let bare = |dict| -> Result<Compressor<'static>> {
                let mut c =
                    Compressor::with_prepared_dictionary(dict).map_err(|e| backend("zstd", e))?;
                // The tag names the dictionary; the frame need not.
                c.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false))
                    .map_err(|e| backend("zstd", e))?;
                Ok(c)
            };
            *cell = Some(Compressors {
                kinds: [bare(&ENCODE_CASE)?, bare(&ENCODE_EVENT)?],
                frame: Vec::new(),
            });
        }
        let Compressors { kinds, frame } = cell.as_mut().expect("set above");
        frame.clear();
        frame.reserve(zstd::zstd_safe::compress_bound(json.len()));
        kinds[kind as usize]
            .compress_to_buffer(json, frame)
            .map_err(|e| backend("cannot compress a record", e))?;
        let body = frame
            .strip_prefix(&ZSTD_MAGIC[..])
            .ok_or_else(|| backend("zstd", "a frame without the magic number"))?;
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(CURRENT);
        out.extend_from_slice(body);
        let_go_if_large(frame);
        Ok(out)
    })
}

/// The JSON of a stored value: TEXT as written before compression, or a tagged BLOB.
pub(crate) fn decode(kind: Kind, value: ValueRef<'_>) -> Result<Vec<u8>> {
    match value {
        ValueRef::Text(json) => Ok(json.to_vec()),
        ValueRef::Blob(stored) => decompress(kind, stored),
        other => Err(StoreError::Backend(format!(
            "a stored record is {:?}, not TEXT or BLOB",
            other.data_type()
        ))),
    }
}

fn decompress(kind: Kind, stored: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |why: &str| StoreError::Backend(format!("a stored record is corrupt: {why}"));
    let (&tag, frame) = stored.split_first().ok_or_else(|| corrupt("empty"))?;
    if frame.is_empty() {
        return Err(corrupt("no frame after the tag"));
    }
    match tag {
        SET_1 => decompress_frame(kind, frame),
        SET_1_BARE => WHOLE_FRAME.with(|whole| {
            let mut whole = whole.borrow_mut();
            whole.clear();
            whole.extend_from_slice(&ZSTD_MAGIC);
            whole.extend_from_slice(frame);
            let json = decompress_frame(kind, &whole);
            let_go_if_large(&mut whole);
            json
        }),
        _ => Err(corrupt(&format!("unknown format tag {tag}"))),
    }
}

/// The JSON of a whole zstd frame made against dictionary set 1.
fn decompress_frame(kind: Kind, frame: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |why: &str| StoreError::Backend(format!("a stored record is corrupt: {why}"));
    let size = Decompressor::upper_bound(frame)
        .ok_or_else(|| corrupt("the frame does not say its size"))?;
    DECOMPRESSORS.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some([
                Decompressor::with_prepared_dictionary(&DECODE_CASE)
                    .map_err(|e| backend("zstd", e))?,
                Decompressor::with_prepared_dictionary(&DECODE_EVENT)
                    .map_err(|e| backend("zstd", e))?,
            ]);
        }
        let decompressor = &mut cell.as_mut().expect("set above")[kind as usize];
        decompressor
            .decompress(frame, size)
            .map_err(|e| corrupt(&e.to_string()))
    })
}

/// `doc_json(doc)`: a case document as JSON text inside SQL (the `q` search), whether
/// stored compressed or not.
pub(crate) fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "doc_json",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let json = decode(Kind::Case, ctx.get_raw(0))
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            String::from_utf8(json).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_text_as_is() {
        let doc = br#"{"id":7,"number":"20250101-000001","status":"reported","title":"\xE8\xB7\xAF\xE7\x81\xAF\xE4\xB8\x8D\xE4\xBA\xAE"}"#;
        let stored = compress(Kind::Case, doc).unwrap();
        assert_eq!(stored[0], CURRENT);
        assert_eq!(decode(Kind::Case, ValueRef::Blob(&stored)).unwrap(), doc);
        assert_eq!(decode(Kind::Case, ValueRef::Text(doc)).unwrap(), doc);
        let details = br#"{"from":"reported","to":"accepted"}"#;
        let stored = compress(Kind::Event, details).unwrap();
        assert_eq!(
            decode(Kind::Event, ValueRef::Blob(&stored)).unwrap(),
            details
        );
    }

    /// A whole frame against set 1, as versions up to schema 18 stored it (tag 1).
    fn tag_1(kind: Kind, json: &[u8]) -> Vec<u8> {
        let dict = match kind {
            Kind::Case => &*ENCODE_CASE,
            Kind::Event => &*ENCODE_EVENT,
        };
        let mut c = Compressor::with_prepared_dictionary(dict).unwrap();
        let mut out = vec![SET_1];
        out.extend(c.compress(json).unwrap());
        out
    }

    #[test]
    fn values_of_every_tag_read_the_same_and_bare_frames_are_smaller() {
        let details = br#"{"changes":{"status":["dispatched","in_progress"]},"from":"dispatched","to":"in_progress"}"#;
        for kind in [Kind::Case, Kind::Event] {
            let old = tag_1(kind, details);
            let new = compress(kind, details).unwrap();
            assert_eq!(new[0], SET_1_BARE);
            assert_eq!(decode(kind, ValueRef::Blob(&old)).unwrap(), details);
            assert_eq!(decode(kind, ValueRef::Blob(&new)).unwrap(), details);
            // The magic number (4 bytes) and the dictionary's id (4 for a trained one).
            assert_eq!(new.len() + 8, old.len(), "{kind:?}");
        }
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[9, 1, 2, 3][..],
            &[CURRENT][..],
            &[CURRENT, 0x28, 0xb5][..],
            &[SET_1, 0x28, 0xb5, 0x2f, 0xfd][..],
            &[SET_1_BARE, 0x23][..],
            &[SET_1_BARE, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            assert!(decode(Kind::Case, ValueRef::Blob(bad)).is_err(), "{bad:?}");
        }
        assert!(decode(Kind::Case, ValueRef::Integer(3)).is_err());
        assert!(decode(Kind::Case, ValueRef::Null).is_err());
    }

    #[test]
    fn a_document_shrinks() {
        let doc = serde_json::json!({
            "id": 5000, "number": "20240125-000032", "status": "closed", "version": 7,
            "channel": "tower_group", "category": "city_appearance",
            "created_at": "2024-01-25T02:45:17Z", "updated_at": "2024-01-26T03:00:01Z",
            "accepted_at": "2024-01-25T03:30:20Z", "overdue": false, "overdue_since": null,
            "escalation_level": 0, "last_escalated_at": null, "supervise_count": 0,
            "pending_extension": null, "rework_count": 0, "reopen_count": 0,
        })
        .to_string();
        let stored = compress(Kind::Case, doc.as_bytes()).unwrap();
        assert!(
            stored.len() * 3 < doc.len(),
            "{} of {}",
            stored.len(),
            doc.len()
        );
    }
}
