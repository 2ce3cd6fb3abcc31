//! The bulk path: finished historic cases written with `COPY … FROM STDIN (FORMAT binary)`
//! (`Store::import_cases`, used by `gridloop bench seed` and the demo).
//!
//! One transaction per call, with the same result as writing each case and event with its
//! own statement: fresh ids after the largest, the cases' own numbers, their events on the
//! global chain in order (hashes computed here, exactly as for a live append), the chain
//! head moved, rollups summed per org and day, the day counters raised past the imported
//! numbers, and the `region` of every row.
//!
//! Locks: the `chain_head` row first (new cases have no row locks to take before it, so the
//! global order — case rows, then the chain head — holds). It is held while the rows stream
//! in: two `COPY`s into the real tables (cases before events, which refer to them), then one
//! pipeline of multi-row upserts (`unnest`) for the chain head, rollups and case numbers.
//! The append-only trigger on events fires on UPDATE and DELETE only, so `COPY` passes.

use std::collections::BTreeMap;
use std::pin::pin;

use chrono::NaiveDate;
use deadpool_postgres::Transaction;
use gridloop_domain::DomainError;
use gridloop_domain::timeline::event_hash;
use gridloop_store::{ImportCase, StoreError};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::cases::{
    CaseRow, ChainHead, EVENT_COLUMNS, Pipeline, RollupDelta, next_case_id, parse_number,
};
use crate::db::{Error, R, backend, ms, region_of};

/// The columns of a case row in the order of [`CaseRow::params`], with their types.
const COPY_CASES: &str = "COPY cases (id, number, status, version, channel, category,
        area_path, org_path, created_by, reporter_phone, title, description, deadline, overdue,
        due_at, created_at, updated_at, lat, lng, source_key, visit_id, doc, region)
    FROM STDIN (FORMAT binary)";

const CASE_TYPES: [Type; 23] = [
    Type::INT8,   // id
    Type::TEXT,   // number
    Type::TEXT,   // status
    Type::INT8,   // version
    Type::TEXT,   // channel
    Type::TEXT,   // category
    Type::TEXT,   // area_path
    Type::TEXT,   // org_path
    Type::TEXT,   // created_by
    Type::TEXT,   // reporter_phone
    Type::TEXT,   // title
    Type::TEXT,   // description
    Type::INT8,   // deadline
    Type::BOOL,   // overdue
    Type::INT8,   // due_at
    Type::INT8,   // created_at
    Type::INT8,   // updated_at
    Type::FLOAT8, // lat
    Type::FLOAT8, // lng
    Type::TEXT,   // source_key
    Type::INT8,   // visit_id
    Type::TEXT,   // doc
    Type::TEXT,   // region
];

/// [`EVENT_COLUMNS`] and the region, with their types.
const EVENT_TYPES: [Type; 10] = [
    Type::INT8, // id
    Type::INT8, // case_id
    Type::INT8, // seq
    Type::TEXT, // action
    Type::TEXT, // actor
    Type::INT8, // at
    Type::TEXT, // details
    Type::TEXT, // prev_hash
    Type::TEXT, // hash
    Type::TEXT, // region
];

/// Raises each day's counter to at least the highest imported number of that day.
const BUMP_NUMBERS: &str = "INSERT INTO case_numbers (day, last_seq)
    SELECT * FROM unnest($1::text[], $2::bigint[])
    ON CONFLICT (day) DO UPDATE
    SET last_seq = greatest(case_numbers.last_seq, excluded.last_seq)";

/// Writes finished historic cases: fresh ids, their own numbers, events on the chain in
/// order, measures summed and written once per row.
pub(crate) async fn import_cases(tx: &Transaction<'_>, cases: &[ImportCase]) -> R<()> {
    if cases.is_empty() {
        return Ok(());
    }
    if cases.iter().any(|imp| imp.case.number.is_empty()) {
        return Err(StoreError::Domain(DomainError::invalid(
            "number",
            "an imported case needs its number",
        ))
        .into());
    }
    let mut head = ChainHead::lock(tx).await?;
    let first_id = next_case_id(tx).await?;
    let copy_cases = tx.prepare_cached(COPY_CASES).await?;
    let copy_events = tx
        .prepare_cached(&format!(
            "COPY events ({EVENT_COLUMNS}, region) FROM STDIN (FORMAT binary)"
        ))
        .await?;

    // The cases, while their rollups and the days' highest numbers are summed.
    let mut rollups = RollupDelta::default();
    let mut last_seq: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    let mut regions = Vec::with_capacity(cases.len());
    let mut w = pin!(BinaryCopyInWriter::new(
        tx.copy_in(&copy_cases).await?,
        &CASE_TYPES
    ));
    for (id, imp) in (first_id..).zip(cases) {
        let mut case = imp.case.clone();
        case.id = id;
        if let Some((day, seq)) = parse_number(&case.number) {
            let last = last_seq.entry(day).or_default();
            *last = (*last).max(seq);
        }
        rollups.add(&case.area_path, &imp.measures);
        let row = CaseRow::new(&case)?;
        w.as_mut().write(&row.params()).await.map_err(taken)?;
        regions.push(region_of(&case.area_path));
    }
    w.as_mut().finish().await.map_err(taken)?;

    // Their events on the chain, in order.
    let mut w = pin!(BinaryCopyInWriter::new(
        tx.copy_in(&copy_events).await?,
        &EVENT_TYPES
    ));
    for ((case_id, imp), region) in (first_id..).zip(cases).zip(&regions) {
        for (seq, e) in (1_i64..).zip(&imp.events) {
            let id = head.id + 1;
            let hash = event_hash(
                &head.hash, id, case_id, seq, &e.action, &e.actor, e.at, &e.details,
            );
            let details = serde_json::to_string(&e.details)
                .map_err(|err| backend(format!("cannot encode event details: {err}")))?;
            w.as_mut()
                .write(&[
                    &id,
                    &case_id,
                    &seq,
                    &e.action,
                    &e.actor,
                    &ms(e.at),
                    &details,
                    &head.hash,
                    &hash,
                    region,
                ])
                .await?;
            head.id = id;
            head.hash = hash;
            head.dirty = true;
        }
    }
    w.as_mut().finish().await?;

    // The chain head, rollups and day counters: one round trip.
    let bump = tx.prepare_cached(BUMP_NUMBERS).await?;
    let rollups = rollups.prepare(tx).await?;
    let mut p = Pipeline::default();
    head.save(tx, &mut p).await?;
    rollups.push(tx, &mut p);
    if !last_seq.is_empty() {
        let days: Vec<String> = last_seq.keys().map(NaiveDate::to_string).collect();
        let seqs: Vec<i64> = last_seq.into_values().collect();
        p.push(async move {
            tx.execute(&bump, &[&days, &seqs]).await?;
            Ok(())
        });
    }
    p.run().await
}

/// A number taken already (by a stored case or another imported one) is a duplicate.
fn taken(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if db.code() == &SqlState::UNIQUE_VIOLATION => StoreError::Duplicate(format!(
            "case number already exists: {}",
            db.detail().unwrap_or(db.message())
        ))
        .into(),
        _ => e.into(),
    }
}
