//! The SIP trunk HTTP API.
