//! The `Store` contract: one story, run on every store.
//!
//! The cases are plain `async fn`s over a [`Harness`] (a fresh, empty place for one store:
//! a temporary directory, a new database). A store's test crate implements [`Factory`] and
//! [`Harness`] and expands every case into a `#[tokio::test]` of its own with
//! [`contract_tests!`], so that `cargo test` names each case per store:
//!
//! ```ignore
//! gridloop_store_contract::contract_tests!(common::Sqlite);
//! ```
//!
//! What only one store has (SQLite's query plans and writer thread, PostgreSQL's several
//! processes, locks and regions) stays in that store's own tests.

pub mod channels;
pub mod fixtures;
pub mod lists;
pub mod rollups;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use gridloop_store::Store;

/// The columns a case row keeps beside its document for the channel lists:
/// `lat`, `lng`, `source_key`, `visit_id`.
pub type Columns = (Option<f64>, Option<f64>, Option<String>, Option<i64>);

/// Makes a fresh, empty place for one store per test.
#[async_trait]
pub trait Factory: Send + Sync {
    /// A fresh place for `test`, or `None` (having printed why) when this store cannot be
    /// tested here, e.g. no database server was given: the test then passes as skipped.
    async fn fresh(&self, test: &str) -> Option<Box<dyn Harness>>;
}

/// One fresh place for a store, and the few ways to look behind its back.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A store on this place: empty and migrated the first time, the same data on every
    /// later call (as after a restart). Drop the previous store first.
    async fn open(&self) -> Arc<dyn Store>;

    /// Runs `sql` (one or more statements) on the database itself, past the store; the
    /// database's message when it refuses.
    async fn raw_sql(&self, sql: &str) -> Result<(), String>;

    /// The statement dropping the trigger `name` on `events` (the dialects differ).
    fn drop_events_trigger(&self, name: &str) -> String;

    /// The statement emptying `events` at once (`TRUNCATE` where the database has it).
    fn empty_events(&self) -> &'static str;

    /// The channel columns of case `id`'s row, read from the database itself.
    async fn columns(&self, id: i64) -> Columns;

    /// Checks that the attachment `id` is kept, with exactly `bytes`, where this store
    /// promises to keep it (beyond reading it back through the store).
    async fn assert_attachment_kept(&self, id: &str, bytes: &[u8]);
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "gridloop-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Expands every contract case into a `#[tokio::test]` run on the store `factory` (an
/// expression of a type implementing [`Factory`]) makes. The calling crate needs `tokio`
/// with its `macros` feature.
#[macro_export]
macro_rules! contract_tests {
    ($factory:expr) => {
        $crate::__contract_cases!($factory;
            store::idempotent_create_replays_and_refuses_a_different_request,
            store::updates_check_versions_and_domain_rules,
            store::events_form_a_chain_that_reveals_tampering,
            store::deleting_the_newest_event_is_detected,
            store::measures_count_at_the_area_and_its_ancestors,
            store::due_cases_come_from_the_due_index,
            store::writes_survive_a_reopen,
            store::lists_filter_by_visibility_and_page_by_keyset,
            store::imports_keep_numbers_the_chain_and_measures,
            store::bulk_imports_leave_a_complete_store,
            store::periods_across_months_sum_their_days,
            store::orgs_users_sessions_and_keys,
            store::calendars_settings_and_attachments,
            store::a_failing_job_does_not_undo_its_batch,
            channels::case_columns_follow_the_document_on_every_write,
            channels::lists_combine_the_channel_filters,
            channels::events_between_keeps_chain_order_and_bounds,
            channels::night_visits_list_a_subtree_newest_first,
            channels::night_visit_pages_are_capped,
            channels::hotline_calls_by_number_newest_first,
            lists::pages_match_a_plain_filter_and_sort,
            rollups::counters_of_many_orgs_sum_their_days,
            rollups::reads_of_many_orgs_follow_every_write,
            rollups::gauges_count_the_cases_of_their_subtree,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($factory:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let factory = $factory;
                if let Some(harness) = $crate::Factory::fresh(&factory, stringify!($case)).await {
                    $crate::$module::$case(&*harness).await;
                }
            }
        )*
    };
}
