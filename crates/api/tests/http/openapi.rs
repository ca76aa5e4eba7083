//! The OpenAPI document: committed as docs/openapi.json and in step with the code, and its
//! response schemas in step with real answers (same keys, same order); and the reference page
//! built from it.

use serde_json::{json, Value};

use crate::support::*;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[test]
fn the_committed_document_matches_the_code() {
    let generated = api::routes::document::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed.trim_end() == generated,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p sip-trunks-api --test http openapi` and commit it"
    );
}

fn document() -> Value {
    serde_json::from_str(api::routes::document::json()).unwrap()
}

/// The property names of component `name`, in order.
fn properties(name: &str) -> Vec<String> {
    match &document()["components"]["schemas"][name]["properties"] {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("no properties for {name}: {other}"),
    }
}

fn keys(value: &Value) -> Vec<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_operation_documents_its_errors_and_the_bearer_scheme() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = keys(&operation["responses"]);
            let public = ["/healthz", "/readyz", "/api/openapi.json"].contains(&path.as_str());
            if !public {
                for status in ["401", "429", "500", "503"] {
                    assert!(
                        responses.contains(&status.to_owned()),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            // Every write with a body parses it; a POST without one (the probe) reads none.
            let writes = method == "post" || method == "put" || method == "patch";
            if writes && operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains(&status.to_owned()),
                        "{method} {path} lacks {status}"
                    );
                }
            }
        }
    }
    let probe = &document["paths"]["/api/user/phone-numbers/sip-trunks/{id}/status/probe"]["post"];
    assert!(
        probe.get("requestBody").is_none(),
        "the probe takes no body"
    );
    let create = &document["paths"]["/api/user/phone-numbers/sip-trunks"]["post"]["responses"];
    assert!(create["409"].is_object());
    let enums = &document["components"]["schemas"]["CallingFormat"]["enum"];
    assert_eq!(enums, &json!(["+e164", "e164", "national"]));
}

#[actix_web::test]
async fn response_schemas_have_the_keys_of_real_answers_in_order() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let created = app
        .create_trunk(&alice.token, &extension_trunk())
        .await
        .json();
    let list = app.list_trunks(&alice.token).await.json();
    let key = app
        .create_api_key(&alice.token, &json!({"name": "k"}))
        .await
        .json();
    let keys_list = app.list_api_keys(&alice.token).await.json();
    let invalid = app.create_trunk(&alice.token, &json!({})).await.json();

    assert_eq!(properties("SipTrunkSaved"), keys(&created));
    assert_eq!(properties("SipTrunk"), keys(&created["data"]));
    assert_eq!(properties("SipTrunkList"), keys(&list));
    assert_eq!(properties("SipTrunkListItem"), keys(&list["data"][0]));
    assert_eq!(properties("ApiKeyCreated"), keys(&key));
    assert_eq!(properties("NewApiKey"), keys(&key["api_key"]));
    assert_eq!(properties("ApiKeyList"), keys(&keys_list));
    assert_eq!(properties("ApiKey"), keys(&keys_list["api_keys"][0]));
    assert_eq!(properties("ValidationError"), keys(&invalid));
    let create_body = properties("CreateSipTrunk");
    assert_eq!(
        create_body,
        api::request::TRUNK_FIELDS.map(String::from).to_vec()
    );
}

#[test]
fn operation_ids_are_unique_and_a_created_trunk_links_to_its_operations() {
    let document = document();
    let mut ids: Vec<String> = Vec::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            ids.push(
                operation["operationId"]
                    .as_str()
                    .expect("an operationId")
                    .to_owned(),
            );
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let links = &document["paths"]["/api/user/phone-numbers/sip-trunks"]["post"]["responses"]
        ["201"]["links"];
    for (name, link) in links.as_object().unwrap() {
        let target = link["operationId"].as_str().unwrap();
        assert!(
            ids.iter().any(|id| id == target),
            "{name} links to {target}"
        );
        assert_eq!(link["parameters"]["id"], "$response.body#/data/id");
    }
    assert_eq!(links.as_object().unwrap().len(), 4);
}

#[actix_web::test]
async fn the_documented_request_examples_are_accepted() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let schemas = &document()["components"]["schemas"];
    let create = schemas["CreateSipTrunk"]["example"].clone();
    let created = app.create_trunk(&alice.token, &create).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let update = schemas["UpdateSipTrunk"]["example"].clone();
    for method in ["PUT", "PATCH"] {
        let updated = app
            .send(request(
                method,
                &trunk_path(1),
                Some(&alice.token),
                Some(&update),
            ))
            .await;
        assert_eq!(updated.status, 200, "{method}: {}", updated.text);
    }
    let key = schemas["CreateApiKey"]["example"].clone();
    let created = app.create_api_key(&alice.token, &key).await;
    assert_eq!(created.status, 201, "{}", created.text);
}

#[actix_web::test]
async fn the_docs_page_runs_only_its_own_scripts_and_cannot_be_framed() {
    let (state, _store) = memory_state();
    let app = TestApp::spawn(state).await;
    let page = app.send(request("GET", "/api/docs", None, None)).await;
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").expect("a CSP");
    let directives: Vec<&str> = policy.split(';').map(str::trim).collect();
    for wanted in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(
            directives.contains(&wanted),
            "{wanted} missing from {policy}"
        );
    }
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // `script-src 'self'` holds only if the page has no inline script.
    let inline = page
        .text
        .match_indices("<script")
        .filter(|(at, _)| !page.text[*at..].starts_with("<script src="))
        .count();
    assert_eq!(inline, 0, "{}", page.text);
}

#[actix_web::test]
async fn the_docs_page_and_its_assets_are_served_by_the_binary_without_any_outside_url() {
    let (state, _store) = memory_state();
    let app = TestApp::spawn(state).await;
    let page = app.send(request("GET", "/api/docs", None, None)).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    for reference in [
        "/api/docs/start.js",
        "/api/docs/swagger-ui-bundle.js",
        "/api/docs/swagger-ui.css",
    ] {
        assert!(page.text.contains(reference), "{reference}");
    }
    let start = app
        .send(request("GET", "/api/docs/start.js", None, None))
        .await;
    assert_eq!(start.status, 200);
    assert!(
        start.text.contains("\"/api/openapi.json\""),
        "{}",
        start.text
    );
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "no outside URL"
    );
    for (path, kind) in [
        (
            "/api/docs/swagger-ui-bundle.js",
            "application/javascript; charset=utf-8",
        ),
        ("/api/docs/swagger-ui.css", "text/css; charset=utf-8"),
    ] {
        let asset = app.send(request("GET", path, None, None)).await;
        assert_eq!(
            (asset.status, asset.header("content-type")),
            (200, Some(kind)),
            "{path}"
        );
        assert!(asset.text.len() > 100_000, "{path} is the real asset");
    }
}
