//! The SQLite store against the `Store` contract (`gridloop-store-contract`): every case
//! of the shared suite, each on a fresh data directory.

mod common;

gridloop_store_contract::contract_tests!(common::Sqlite);
