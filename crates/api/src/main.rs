//! The `sip-trunks` binary.

fn main() {}
