//! The `sip-trunks` binary's crate: the command line, the settings, the start-up (store,
//! keys, the voice infrastructure, the HTTP server, the metrics listener, the reconciler),
//! and the one-shot commands. It wires the others together: `api` serves HTTP, `service`
//! holds the use cases, `store` and the adapters implement the ports.

pub mod cli;
pub mod infrastructure;
pub mod keys;
pub mod settings;
pub mod startup;
