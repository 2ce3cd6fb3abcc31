//! Export and import of a store's whole content, for `gridloop copy`.

use std::path::Path;

use gridloop_store::{Page, Record, Result, StoreError};
use rusqlite::Connection;

pub fn export(
    _c: &Connection,
    _attachments: &Path,
    _cursor: Option<&str>,
    _limit: u32,
) -> Result<Page<Record>> {
    Err(StoreError::Backend("export is being written".into()))
}

pub fn import(_c: &Connection, _attachments: &Path, _records: Vec<Record>) -> Result<()> {
    Err(StoreError::Backend("import is being written".into()))
}
