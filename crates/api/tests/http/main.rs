//! In-process tests of every row of the HTTP contract, over the in-memory store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod account;
mod api_keys;
mod failures;
mod hostile;
mod limits;
mod openapi;
mod phone_numbers;
mod protocol;
mod provisioning;
mod simulate;
mod status;
mod support;
mod trunks;
