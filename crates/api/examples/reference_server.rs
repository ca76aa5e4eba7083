//! The benchmark's reference server: a minimal actix-web process that answers every GET with
//! the exact bytes of a file (a captured 10-trunk list answer): no auth, no database. The
//! service's read throughput is reported as a ratio to this, measured in the same run.
//!
//! `cargo run --release --example reference_server -- <bind address> <body file> <workers>`

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let file = args.next().unwrap_or_else(|| "list.json".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let body = web::Bytes::from(std::fs::read(&file)?);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .workers(workers)
    .bind(bind)?
    .run()
    .await
}
