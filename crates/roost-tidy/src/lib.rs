//! Roost's architecture tests. This crate has no code of its own: its tests
//! (`tests/tidy.rs`, `tests/openapi.rs`) read the workspace's sources and the
//! committed OpenAPI document and fail, naming `file:line`, when one of the
//! invariants in ARCHITECTURE.md is broken. Run them with
//! `cargo test -p roost-tidy`.
#![forbid(unsafe_code)]
