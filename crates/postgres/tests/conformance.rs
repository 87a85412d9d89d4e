//! The whole conformance suite against the real PostgreSQL server, one database per test.

mod common;

wa_pairing_store_testkit::conformance_tests!(common::backend; devices, auth_state, auth_cascade, budget, change_feed);
