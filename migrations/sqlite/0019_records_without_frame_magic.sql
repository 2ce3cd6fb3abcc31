-- From this version on, case documents and event details are written in format tag 2
-- (`crates/store-sqlite/src/codec.rs`): the zstd frame without its magic number and
-- dictionary id, 8 bytes less a record. Older values (tag 1, or plain JSON) are read as
-- they are, so nothing is rewritten here. This migration changes no table: it raises the
-- schema version so that an older gridloop, which cannot read tag 2, refuses the store at
-- its start rather than failing on the first new record it reads.
SELECT 1;
