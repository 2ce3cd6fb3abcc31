//! What a case's document (`case_docs.doc`) holds: the fields of the case that its row in
//! `cases` does not.
//!
//! The row keeps 17 of the case's fields in columns, for the indexes and the filters; until
//! schema 23 every document held them a second time (~70 of ~490 compressed bytes). A
//! document written since leaves them out ([`apart`]), and reads put them back from the row:
//! a query selects [`case_row!`], the document as stored with the row's fields beside it,
//! still compressed (a list decodes only the rows of its page), and [`decode`] makes the
//! case of it.
//!
//! A document holding every field starts with `{"id":` (a case serializes its id first):
//! those written before, and those of a case with a time finer than the row's whole
//! milliseconds, which the row could not give back. They are read as they are.

use std::cell::RefCell;

use chrono::{DateTime, Utc};
use gridloop_domain::case::{Case, Channel, Location, Status};
use gridloop_store::{Result, StoreError};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use serde::ser::{self, Impossible, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::codec::{self, Kind};

/// A case as a query over `cases` reads it: `case_row(doc, row fields…)`, the document as
/// stored with the row's fields beside it ([`register_function`]), for [`decode`]. The
/// fields are [`RowValues`]' in order. A macro, so that statements can be put together
/// with `concat!`.
macro_rules! case_row {
    () => {
        "case_row((SELECT doc FROM case_docs WHERE case_docs.id = cases.id), \
         cases.id, cases.number, cases.status, cases.version, cases.channel, cases.category, \
         cases.lat, cases.lng, cases.area_path, cases.org_path, cases.created_by, \
         cases.created_at, cases.updated_at, cases.deadline, cases.overdue, cases.due_at, \
         cases.source_key, cases.visit_id)"
    };
}
pub(crate) use case_row;

/// The fields of a case its row holds, as `case_row` passes them on (a JSON array; times
/// in milliseconds).
#[derive(Debug, Deserialize)]
struct RowValues(
    i64,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<f64>,
    Option<f64>,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    // `overdue`, 0 or 1.
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

/// The fields of a case its row holds, which a document apart from it leaves out.
const ROW_FIELDS: [&str; 17] = [
    "id",
    "number",
    "status",
    "version",
    "channel",
    "category",
    "location",
    "area_path",
    "org_path",
    "created_by",
    "created_at",
    "updated_at",
    "deadline",
    "overdue",
    "due_at",
    "source_key",
    "visit_id",
];

/// How a document holding every field starts.
const WHOLE: &[u8] = b"{\"id\":";

thread_local! {
    /// The buffer a document's JSON is written in, reused case after case.
    static JSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn encode_error(case: &Case, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("cannot encode case {}: {e}", case.id))
}

/// Whether the row gives back `t` exactly: it keeps whole milliseconds.
fn whole_ms(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_nanos().is_multiple_of(1_000_000)
}

/// Whether the row gives back every field it holds of `case`.
fn row_holds(case: &Case) -> bool {
    [case.created_at, case.updated_at].into_iter().all(whole_ms)
        && [case.deadline, case.due_at]
            .into_iter()
            .flatten()
            .all(whole_ms)
}

/// The document of `case` as stored, when it does not depend on its row: the fields the
/// row does not hold, compressed. `None` when the row could not give back one of its
/// fields: then the document holds them all ([`stored`]), and needs the case's id.
pub(crate) fn apart(case: &Case) -> Result<Option<Vec<u8>>> {
    if !row_holds(case) {
        return Ok(None);
    }
    JSON.with(|json| {
        let mut json = json.borrow_mut();
        json.clear();
        write_without(case, &ROW_FIELDS, &mut json).map_err(|e| encode_error(case, e))?;
        let stored = codec::compress(Kind::Case, &json);
        codec::let_go_if_large(&mut json);
        stored.map(Some)
    })
}

/// The document of `case` as stored: [`apart`] from its row, or else holding every field.
pub(crate) fn stored(case: &Case) -> Result<Vec<u8>> {
    if let Some(doc) = apart(case)? {
        return Ok(doc);
    }
    JSON.with(|json| {
        let mut json = json.borrow_mut();
        json.clear();
        serde_json::to_writer(&mut *json, case).map_err(|e| encode_error(case, e))?;
        let stored = codec::compress(Kind::Case, &json);
        codec::let_go_if_large(&mut json);
        stored
    })
}

/// Serializes a struct without its fields named in `skip`, through `inner` (serde_json's
/// serializer): the members are left out as they come, in one pass, and the others keep
/// their order. Anything but a struct is refused.
struct Without<S> {
    inner: S,
    skip: &'static [&'static str],
}

/// [`Without`]'s struct: passes on the fields not skipped.
struct WithoutFields<S> {
    inner: S,
    skip: &'static [&'static str],
}

impl<S: SerializeStruct> SerializeStruct for WithoutFields<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> std::result::Result<(), S::Error> {
        if self.skip.contains(&key) {
            return Ok(());
        }
        self.inner.serialize_field(key, value)
    }

    fn end(self) -> std::result::Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// The methods of [`Without`] for what is not a struct: each an error.
macro_rules! not_a_struct {
    ($($method:ident($($arg:ty),*) -> $out:ty;)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> std::result::Result<$out, S::Error> {
                Err(ser::Error::custom("a case document must be a struct"))
            }
        )*
    };
}

impl<S: Serializer> Serializer for Without<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeStruct = WithoutFields<S::SerializeStruct>;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = Impossible<S::Ok, S::Error>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> std::result::Result<Self::SerializeStruct, S::Error> {
        Ok(WithoutFields {
            inner: self.inner.serialize_struct(name, len)?,
            skip: self.skip,
        })
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> std::result::Result<S::Ok, S::Error> {
        Err(ser::Error::custom("a case document must be a struct"))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<S::Ok, S::Error> {
        Err(ser::Error::custom("a case document must be a struct"))
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<S::Ok, S::Error> {
        Err(ser::Error::custom("a case document must be a struct"))
    }

    not_a_struct! {
        serialize_bool(bool) -> S::Ok;
        serialize_i8(i8) -> S::Ok;
        serialize_i16(i16) -> S::Ok;
        serialize_i32(i32) -> S::Ok;
        serialize_i64(i64) -> S::Ok;
        serialize_u8(u8) -> S::Ok;
        serialize_u16(u16) -> S::Ok;
        serialize_u32(u32) -> S::Ok;
        serialize_u64(u64) -> S::Ok;
        serialize_f32(f32) -> S::Ok;
        serialize_f64(f64) -> S::Ok;
        serialize_char(char) -> S::Ok;
        serialize_str(&str) -> S::Ok;
        serialize_bytes(&[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(&'static str) -> S::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> S::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

/// Writes `value`, a struct, as compact JSON without its fields named in `skip`.
fn write_without<T: Serialize>(
    value: &T,
    skip: &'static [&'static str],
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    value.serialize(Without {
        inner: &mut serde_json::Serializer::new(out),
        skip,
    })
}

/// The value `case_row` gives: the document as stored and the row's fields, packed as
/// `[1 if the document is a BLOB, 0 if TEXT][its length, u32 LE][document][fields]`.
fn pack(doc: ValueRef<'_>, row: &[ValueRef<'_>]) -> rusqlite::Result<Vec<u8>> {
    let (blob, doc) = match doc {
        ValueRef::Blob(b) => (1, b),
        ValueRef::Text(t) => (0, t),
        other => {
            return Err(user_error(format!(
                "a case document is {:?}",
                other.data_type()
            )));
        }
    };
    let len = u32::try_from(doc.len()).map_err(|_| user_error("a case document of 4 GB"))?;
    let mut out = Vec::with_capacity(doc.len() + 200);
    out.push(blob);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(doc);
    // The fields as a JSON array.
    out.push(b'[');
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = match *v {
            ValueRef::Null => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            ValueRef::Integer(n) => serde_json::to_writer(&mut out, &n),
            ValueRef::Real(x) => serde_json::to_writer(&mut out, &x),
            ValueRef::Text(t) => {
                let t = std::str::from_utf8(t).map_err(|e| user_error(e.to_string()))?;
                serde_json::to_writer(&mut out, t)
            }
            ValueRef::Blob(_) => return Err(user_error("a case column holds a BLOB")),
        };
        written.map_err(|e| user_error(e.to_string()))?;
    }
    out.push(b']');
    Ok(out)
}

fn user_error(why: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(why.into().into())
}

/// `case_row(doc, id, number, …)` ([`case_row!`]): a case as [`decode`] reads it, or NULL
/// for a case without its document.
pub(crate) fn register_function(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "case_row",
        19,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let doc = ctx.get_raw(0);
            if doc == ValueRef::Null {
                return Ok(None);
            }
            let row: Vec<ValueRef<'_>> = (1..ctx.len()).map(|i| ctx.get_raw(i)).collect();
            pack(doc, &row).map(Some)
        },
    )
}

/// What a [`Case`] in JSON starts with when its document holds none of the row's fields:
/// placeholders for those a case cannot do without, each then set from the row.
const PLACEHOLDERS: &[u8] = br#"{"id":0,"number":"","status":"reported","version":0,"channel":"hotline","area_path":"","org_path":"","created_at":"1970-01-01T00:00:00Z","updated_at":"1970-01-01T00:00:00Z","overdue":false,"#;

/// The case `case_row` gave for case `id`: NULL (a case without its document) is an error.
pub(crate) fn decode(value: ValueRef<'_>, id: i64) -> Result<Case> {
    let corrupt = |why: &dyn std::fmt::Display| {
        StoreError::Backend(format!("the stored case {id} is corrupt: {why}"))
    };
    let packed = match value {
        ValueRef::Blob(b) => b,
        ValueRef::Null => return Err(corrupt(&"it has no document")),
        other => return Err(corrupt(&format!("it is read as {:?}", other.data_type()))),
    };
    let (&blob, rest) = packed.split_first().ok_or_else(|| corrupt(&"empty"))?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt(&"cut short"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt(&"cut short"));
    }
    let (doc, row) = rest.split_at(len);
    let doc = match blob {
        1 => ValueRef::Blob(doc),
        _ => ValueRef::Text(doc),
    };
    let json = codec::decode(Kind::Case, doc)?;
    // The document checked as UTF-8 at once: parsing bytes checks every string on its own.
    let json = std::str::from_utf8(&json).map_err(|e| corrupt(&e))?;
    if json.as_bytes().starts_with(WHOLE) {
        return serde_json::from_str(json).map_err(|e| corrupt(&e));
    }
    let fields = json
        .strip_prefix('{')
        .ok_or_else(|| corrupt(&"its document is not an object"))?;
    let mut text = String::with_capacity(PLACEHOLDERS.len() + fields.len());
    // Both ASCII or checked above.
    text.push_str(std::str::from_utf8(PLACEHOLDERS).map_err(|e| corrupt(&e))?);
    if fields == "}" {
        text.pop();
    }
    text.push_str(fields);
    let mut case: Case = serde_json::from_str(&text).map_err(|e| corrupt(&e))?;
    let row: RowValues = serde_json::from_slice(row).map_err(|e| corrupt(&e))?;
    set_row_fields(&mut case, row).map_err(|e| corrupt(&e))?;
    Ok(case)
}

/// Sets the fields of `case` that its row holds.
fn set_row_fields(case: &mut Case, row: RowValues) -> std::result::Result<(), String> {
    let RowValues(
        id,
        number,
        status,
        version,
        channel,
        category,
        lat,
        lng,
        area_path,
        org_path,
        created_by,
        created_at,
        updated_at,
        deadline,
        overdue,
        due_at,
        source_key,
        visit_id,
    ) = row;
    let time = |ms: i64| DateTime::from_timestamp_millis(ms).ok_or(format!("{ms} is not a time"));
    case.id = id;
    case.number = number;
    case.status = Status::parse(&status).ok_or(format!("no status {status}"))?;
    case.version = version;
    case.channel = Channel::parse(&channel).ok_or(format!("no channel {channel}"))?;
    case.category = category;
    case.location = lat.zip(lng).map(|(lat, lng)| Location { lat, lng });
    case.area_path = area_path;
    case.org_path = org_path;
    case.created_by = created_by;
    case.created_at = time(created_at)?;
    case.updated_at = time(updated_at)?;
    case.deadline = deadline.map(time).transpose()?;
    case.overdue = overdue != 0;
    case.due_at = due_at.map(time).transpose()?;
    case.source_key = source_key;
    case.visit_id = visit_id;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[derive(Serialize)]
    struct Sample {
        id: i64,
        title: &'static str,
        status: &'static str,
        attributes: Value,
        visit_id: Option<i64>,
        location: Option<Location>,
    }

    #[test]
    fn row_fields_leave_and_the_rest_stays_in_order() {
        let sample = Sample {
            id: 7,
            title: "a \"quoted\" {brace}, [bracket]",
            status: "closed",
            attributes: json!({"nested": [{"id": 1}, [2, {"version": 3}]]}),
            visit_id: None,
            location: Some(Location { lat: 1.5, lng: 2.0 }),
        };
        let mut out = Vec::new();
        write_without(&sample, &ROW_FIELDS, &mut out).unwrap();
        // Nested fields of the same names are the document's own.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"title":"a \"quoted\" {brace}, [bracket]","attributes":{"nested":[{"id":1},[2,{"version":3}]]}}"#
        );
        let mut out = Vec::new();
        write_without(&sample, &[], &mut out).unwrap();
        assert_eq!(out, serde_json::to_vec(&sample).unwrap());
    }

    #[test]
    fn what_is_not_a_struct_is_refused() {
        for bad in [json!({"id": 1}), json!([1]), json!("x"), json!(null)] {
            assert!(
                write_without(&bad, &ROW_FIELDS, &mut Vec::new()).is_err(),
                "{bad}"
            );
        }
        assert!(write_without(&Some(1), &ROW_FIELDS, &mut Vec::new()).is_err());
    }

    fn case(id: i64) -> Case {
        serde_json::from_value(json!({
            "id": id, "number": format!("20250101-{id:06}"), "status": "dispatched",
            "version": 3, "channel": "grid_patrol", "title": "路灯不亮",
            "description": "小区东门 \"3号\" 路灯, {不亮}", "category": "street_light",
            "location": {"lat": 30.274_084_123_456_79, "lng": 120.155_07},
            "address": null, "area_org": "g1", "area_path": "/c/s/g1/", "org": "g1",
            "org_path": "/c/s/g1/", "reporter": {"name": "张三", "phone": "13812341234"},
            "created_by": "s1-dispatcher", "attachments": ["a1"],
            "created_at": "2025-01-01T08:00:00.125Z", "updated_at": "2025-01-02T09:30:00Z",
            "deadline": "2025-01-06T08:00:00Z", "due_at": "2025-01-06T08:00:00Z",
            "claim_reminded": false, "overdue": true, "escalation_level": 1,
            "supervise_count": 0, "extension_days": 0, "result_attachments": [],
            "rework_count": 0, "reopen_count": 0, "awaiting_feedback": false,
            "feedback_count": 0, "source_key": "cam-7:fire", "visit_id": 9,
            "attributes": {"id": 1, "status": "x"},
        }))
        .unwrap()
    }

    fn store() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn stored_json(conn: &rusqlite::Connection, id: i64) -> Vec<u8> {
        conn.query_row("SELECT doc FROM case_docs WHERE id = ?1", [id], |r| {
            Ok(codec::decode(Kind::Case, r.get_ref(0)?).unwrap())
        })
        .unwrap()
    }

    #[test]
    fn a_document_holds_what_the_row_does_not_and_reads_back_whole() {
        let conn = store();
        let written = case(1);
        crate::cases::insert_case(&conn, &written).unwrap();
        let doc: Value = serde_json::from_slice(&stored_json(&conn, 1)).unwrap();
        for field in ROW_FIELDS {
            assert!(doc.get(field).is_none(), "{field} is in the document");
        }
        assert_eq!(doc["title"], "路灯不亮");
        // Fields of the same names deeper down are the document's own.
        assert_eq!(doc["attributes"], json!({"id": 1, "status": "x"}));
        assert_eq!(
            crate::cases::load_case(&conn, 1).unwrap(),
            Some(written.clone())
        );
        let by_number = crate::cases::case_by_number(&conn, &written.number).unwrap();
        assert_eq!(by_number, Some(written));

        // Without a location, category or deadline: nulls from the row.
        let mut bare = case(2);
        (bare.location, bare.category, bare.deadline, bare.due_at) = (None, None, None, None);
        (bare.created_by, bare.source_key, bare.visit_id) = (None, None, None);
        crate::cases::insert_case(&conn, &bare).unwrap();
        assert_eq!(crate::cases::load_case(&conn, 2).unwrap(), Some(bare));
    }

    #[test]
    fn a_time_the_row_cannot_hold_keeps_the_document_whole() {
        let conn = store();
        let mut fine = case(1);
        fine.updated_at += chrono::Duration::microseconds(1);
        crate::cases::insert_case(&conn, &fine).unwrap();
        assert!(stored_json(&conn, 1).starts_with(WHOLE));
        assert_eq!(crate::cases::load_case(&conn, 1).unwrap(), Some(fine));
    }

    #[test]
    fn whole_documents_written_before_read_as_they_are() {
        let conn = store();
        let written = case(1);
        crate::cases::insert_case(&conn, &written).unwrap();
        let whole = serde_json::to_vec(&written).unwrap();
        conn.execute(
            "UPDATE case_docs SET doc = ?1 WHERE id = 1",
            [codec::compress(Kind::Case, &whole).unwrap()],
        )
        .unwrap();
        assert_eq!(crate::cases::load_case(&conn, 1).unwrap(), Some(written));
    }

    #[test]
    fn a_row_that_cannot_be_read_back_is_an_error() {
        let conn = store();
        crate::cases::insert_case(&conn, &case(1)).unwrap();
        conn.execute("UPDATE cases SET number = x'ff' WHERE id = 1", [])
            .unwrap();
        assert!(crate::cases::load_case(&conn, 1).is_err());
        conn.execute("DELETE FROM case_docs WHERE id = 1", [])
            .unwrap();
        assert!(crate::cases::load_case(&conn, 1).is_err());
    }

    #[test]
    fn the_row_fields_are_fields_of_a_case_and_the_placeholders_some_of_them() {
        for name in ROW_FIELDS {
            assert!(
                gridloop_domain::case::DIFF_FIELDS.contains(&name)
                    || gridloop_domain::case::DIFF_SKIPPED.contains(&name),
                "{name}"
            );
        }
        let mut placeholders = PLACEHOLDERS.to_vec();
        *placeholders.last_mut().unwrap() = b'}';
        let placeholders: serde_json::Map<String, Value> =
            serde_json::from_slice(&placeholders).unwrap();
        for name in placeholders.keys() {
            assert!(ROW_FIELDS.contains(&name.as_str()), "{name}");
        }
    }

    #[test]
    fn packed_values_cut_short_or_mislabelled_are_errors() {
        let conn = store();
        crate::cases::insert_case(&conn, &case(1)).unwrap();
        let packed: Vec<u8> = conn
            .query_row(
                concat!("SELECT ", case_row!(), " FROM cases WHERE id = 1"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(decode(ValueRef::Blob(&packed), 1).unwrap(), case(1));
        for cut in [0, 1, 4, 5, 40, packed.len() - 1] {
            assert!(decode(ValueRef::Blob(&packed[..cut]), 1).is_err(), "{cut}");
        }
        let mut as_text = packed.clone();
        as_text[0] = 0;
        assert!(decode(ValueRef::Blob(&as_text), 1).is_err());
        assert!(decode(ValueRef::Null, 1).is_err());
        assert!(decode(ValueRef::Text(b"{}"), 1).is_err());
    }
}
