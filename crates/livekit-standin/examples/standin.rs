//! Runs the LiveKit stand-in until interrupted, printing the three variables that point
//! `sip-trunks` at it: a LiveKit to try provisioning with on a machine without one.
//!
//! `cargo run -p sip-trunks-livekit-standin --example standin`

#![allow(clippy::print_stdout)] // the variables to export, for the person running it

use livekit_standin::StandIn;

fn main() {
    let standin = StandIn::start();
    println!("export LIVEKIT_URL={}", standin.url());
    println!("export LIVEKIT_API_KEY={}", standin.api_key());
    println!("export LIVEKIT_API_SECRET={}", standin.api_secret());
    println!("# LiveKit stand-in running; Ctrl-C stops it (its trunks are in memory only)");
    loop {
        std::thread::park();
    }
}
