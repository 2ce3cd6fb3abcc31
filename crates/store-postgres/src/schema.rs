//! Migrating the schema.
//!
//! Migrations are the SQL files in `migrations/postgres/`, compiled into the binary and
//! applied in order at connect, all of the pending ones in one transaction, each recorded in
//! `schema_version`. Several servers starting at once take an advisory transaction lock
//! first, so that exactly one of them migrates. A database written by a newer gridloop is
//! refused rather than used half-understood.

use deadpool_postgres::Object;

use crate::db::{R, backend, get};

/// `(version, name, sql)`, in order. Never edit a released migration: add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "0002_rollup_months",
        include_str!("../../../migrations/postgres/0002_rollup_months.sql"),
    ),
    (
        3,
        "0003_stats_reads",
        include_str!("../../../migrations/postgres/0003_stats_reads.sql"),
    ),
];

/// The advisory lock migrations run under ("gridmigr").
const MIGRATION_LOCK: i64 = 0x6772_6964_6d69_6772;

/// Applies the pending migrations. Returns the schema version now in effect.
pub(crate) async fn migrate(client: &mut Object) -> R<i64> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )
    .await?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?;
    let current: i64 = get(&row, 0)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(backend(format!(
            "the database has schema version {current}, newer than this program knows \
             ({latest}); use a newer gridloop"
        )));
    }
    let now = chrono::Utc::now().timestamp_millis();
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await.map_err(|e| {
            backend(format!(
                "migration {name} failed: {}",
                crate::db::describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &now],
        )
        .await?;
        tracing::info!(migration = name, "applied migration");
    }
    tx.commit().await?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].0 < w[1].0, "migrations must be in version order");
        }
    }
}
