//! The `sip-trunks` binary: see `sip-trunks --help`.

use clap::Parser;

#[actix_web::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(error) = api::cli::Cli::parse().run().await {
        log::error!("{error}");
        std::process::exit(1);
    }
}
