//! Attachments: content-addressed files under `attachments/<first 2 hex>/<sha256>`, with a
//! row per file. The file is made durable (written to a temporary name, synced, renamed,
//! directory synced) before its row commits, so a committed row always has its bytes; a
//! crash in between leaves at most an orphan file that the next upload of the same content
//! reuses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gridloop_store::{Attachment, Result, StoreError};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use crate::sql::{Db, first, from_ms, get, ms};

/// The hex SHA-256 of `bytes`: the attachment's id.
pub(crate) fn content_id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Ids name files, so only exactly what [`content_id`] produces is accepted.
pub(crate) fn is_valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn file_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(&id[..2]).join(id)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes the content to its file unless it is there already. Blocking.
pub(crate) fn write_file(dir: &Path, id: &str, bytes: &[u8]) -> Result<()> {
    let path = file_path(dir, id);
    if path.exists() {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(dir);
    fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    // Unique per upload: two concurrent uploads of the same content each write their own
    // temporary file and the second rename harmlessly replaces the first.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = parent.join(format!(
        ".{id}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        // The rename itself is durable only once the directory is synced.
        fs::File::open(parent)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write", &path, e));
    }
    Ok(())
}

/// Records the attachment (the first record of a content wins) and returns the stored one.
pub(crate) fn insert_row(conn: &Connection, a: &Attachment) -> Result<Attachment> {
    conn.prepare_cached(
        "INSERT INTO attachments (id, content_type, size, uploaded_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    )
    .db()?
    .execute(params![
        a.id,
        a.content_type,
        a.size,
        a.uploaded_by,
        ms(a.created_at)
    ])
    .db()?;
    row(conn, &a.id)?.ok_or_else(|| StoreError::Backend("the attachment row vanished".into()))
}

pub(crate) fn row(conn: &Connection, id: &str) -> Result<Option<Attachment>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, content_type, size, uploaded_by, created_at FROM attachments WHERE id = ?1",
        )
        .db()?;
    first(stmt.query([id]).db()?, |r| {
        Ok(Attachment {
            id: get(r, 0)?,
            content_type: get(r, 1)?,
            size: get(r, 2)?,
            uploaded_by: get(r, 3)?,
            created_at: from_ms(get(r, 4)?)?,
        })
    })
}

/// The record and the bytes of an attachment. Blocking.
pub(crate) fn read(
    conn: &Connection,
    dir: &Path,
    id: &str,
) -> Result<Option<(Attachment, Vec<u8>)>> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    let Some(meta) = row(conn, id)? else {
        return Ok(None);
    };
    let path = file_path(dir, id);
    let bytes = fs::read(&path).map_err(|e| io_error("read", &path, e))?;
    Ok(Some((meta, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = content_id(b"hello");
        assert!(is_valid_id(&id));
        assert!(!is_valid_id("../etc/passwd"));
        assert!(!is_valid_id(&id.to_uppercase()));
    }
}
