//! The `sip-trunks` binary: see `sip-trunks --help`.

use std::time::Duration;

/// How long the process waits, on its way out, for database connections being opened.
const CONNECT_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

#[actix_web::main]
async fn main() {
    let cli = server::cli::Cli::parse_naming_the_infrastructure();
    api::logging::init(cli.log_format);
    let outcome = cli.run().await;
    // Every exit path passes here: no connection may be inside libpq's TLS handshake while
    // `exit` runs OpenSSL's clean-up (that crashed one-shot commands after their work).
    if !store::close_connection_attempts(CONNECT_DRAIN_TIMEOUT) {
        log::warn!("a database connection was still being opened at exit");
    }
    if let Err(error) = outcome {
        log::error!("{error}");
        std::process::exit(1);
    }
}
