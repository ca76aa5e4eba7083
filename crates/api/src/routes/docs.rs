//! `GET /api/docs`: an interactive API reference (Swagger UI) over `/api/openapi.json`,
//! served entirely by the binary. Its assets are embedded at build time
//! (`crates/api/assets/swagger-ui/`), so the page works offline; "Try it out" sends real
//! requests to this service with the token given under "Authorize".
//!
//! The page is locked down: a Content-Security-Policy lets it run only this service's own
//! scripts (no inline script, so its start-up is a file of its own), fetch only from this
//! service, and be framed by nobody (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for
//! browsers that predate it). Swagger UI sets inline styles and draws icons from `data:` URLs,
//! which the policy allows; nothing else.

use actix_web::http::header;
use actix_web::HttpResponse;

const BUNDLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const STYLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sip-trunks API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/start.js"></script>
</body>
</html>
"##;

const START: &str = r##"window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  tryItOutEnabled: false,
  persistAuthorization: false,
  displayOperationId: true,
});
"##;

/// What the page may do: see the module documentation.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(PAGE)
}

/// The page's start-up: Swagger UI over this service's document.
pub async fn start() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(START)
}

/// Swagger UI's script.
pub async fn bundle() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(BUNDLE)
}

/// Swagger UI's style sheet.
pub async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(STYLE)
}
