//! The PostgreSQL store against the `Store` contract (`gridloop-store-contract`): every case
//! of the shared suite, each on a fresh database of the server `GRIDLOOP_TEST_DATABASE_URL`
//! names (skipped, with a line saying so, when it is unset).

mod common;

gridloop_store_contract::contract_tests!(common::Pg);
