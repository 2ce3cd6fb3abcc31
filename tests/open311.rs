//! Open311 GeoReport v2 against the real binary: every JSON answer (errors included) is
//! checked against the published JSON Schemas in `../shared/open311/georeport-v2/` (and,
//! for the documents those lack, against schemas written here from the spec), and every XML
//! answer for well-formedness.

mod common;

use std::path::PathBuf;

use common::{App, NOW, inside, temp_dir};
use jsonschema::Validator;
use serde_json::{Value, json};

const JSON_CT: &str = "application/json; charset=utf-8";
const XML_CT: &str = "text/xml; charset=utf-8";

/// The published schemas live beside the repository (`shared/` next to the clone).
fn schema_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/open311/georeport-v2");
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("the Open311 schemas at {}: {e}", dir.display()))
}

/// A schema whose relative `$ref`s resolve against the published folder.
fn validator(name: &str, schema: &Value) -> Validator {
    let base = format!("file://{}/{name}", schema_dir().display());
    jsonschema::options()
        .with_base_uri(base)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

fn published(name: &str) -> Validator {
    let text = std::fs::read_to_string(schema_dir().join(name)).unwrap();
    validator(name, &serde_json::from_str(&text).unwrap())
}

struct Schemas {
    services: Validator,
    service_definition: Validator,
    requests: Validator,
    /// POST requests: the swagger's RequestResponse, an id or a token, never both.
    created: Validator,
    tokens: Validator,
    errors: Validator,
    discovery: Validator,
    updates: Validator,
}

impl Schemas {
    fn load() -> Schemas {
        let updates_statuses = [
            "OPEN",
            "CLOSED",
            "FIXED",
            "IN_PROGRESS",
            "ACTION_SCHEDULED",
            "INVESTIGATING",
            "DUPLICATE",
            "NOT_COUNCILS_RESPONSIBILITY",
            "NO_FURTHER_ACTION",
            "INTERNAL_REFERRAL",
        ];
        Schemas {
            services: published("services.json"),
            service_definition: published("service-definition.json"),
            requests: published("requests.json"),
            created: validator(
                "created.json",
                &json!({"type": "array", "minItems": 1, "items": {"allOf": [
                    {"$ref": "swagger.json#/definitions/RequestResponse"},
                    {"oneOf": [{"required": ["service_request_id"]}, {"required": ["token"]}]}
                ]}}),
            ),
            tokens: validator(
                "tokens.json",
                &json!({"type": "array", "minItems": 1, "items": {"allOf": [
                    {"$ref": "swagger.json#/definitions/TokenResponse"},
                    {"required": ["service_request_id"]}
                ]}}),
            ),
            errors: validator(
                "errors.json",
                &json!({"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["code", "description"],
                    "properties": {"code": {"type": "integer"}, "description": {"type": "string", "minLength": 1}}
                }}),
            ),
            discovery: validator(
                "discovery.json",
                &json!({"type": "object", "required": ["changeset", "contact", "key_service", "endpoints"],
                "properties": {
                    "changeset": {"type": "string", "format": "date-time"},
                    "contact": {"type": "string"},
                    "key_service": {"type": "string"},
                    "endpoints": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["specification", "url", "type", "formats"],
                        "properties": {
                            "specification": {"type": "string", "format": "uri"},
                            "url": {"type": "string", "format": "uri"},
                            "changeset": {"type": "string", "format": "date-time"},
                            "type": {"enum": ["production", "test"]},
                            "formats": {"type": "array", "minItems": 1, "items": {"type": "string"}}
                        }
                    }}
                }}),
            ),
            updates: validator(
                "servicerequestupdates.json",
                &json!({"type": "array", "items": {
                    "type": "object",
                    "required": ["update_id", "service_request_id", "status", "updated_datetime"],
                    "properties": {
                        "update_id": {"type": "string"},
                        "service_request_id": {"type": "string"},
                        "status": {"enum": updates_statuses},
                        "updated_datetime": {"type": "string", "format": "date-time"},
                        "description": {"type": ["string", "null"]},
                        "media_url": {"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}]},
                        "external_status_code": {"type": ["string", "null"]}
                    }
                }}),
            ),
        }
    }
}

/// The validators really resolve the published `$ref`s and check formats.
fn self_check(s: &Schemas) {
    let request = |status: &str, at: &str| {
        json!([{"service_request_id": "1", "status": status, "service_code": "x",
                "requested_datetime": at}])
    };
    assert!(
        s.requests
            .is_valid(&request("open", "2026-11-24T10:00:00+08:00"))
    );
    assert!(
        !s.requests
            .is_valid(&request("pending", "2026-11-24T10:00:00+08:00"))
    );
    assert!(!s.requests.is_valid(&request("open", "yesterday")));
    assert!(!s.services.is_valid(&json!([{"service_code": 1}])));
    assert!(
        !s.created
            .is_valid(&json!([{"service_request_id": "1", "token": "1"}]))
    );
    assert!(!s.created.is_valid(&json!([{"service_request_id": 1}])));
    assert!(!s.errors.is_valid(&json!({"error": {"code": "x"}})));
}

#[track_caller]
fn check(v: &Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{doc:#}");
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    #[track_caller]
    fn json(&self, want: u16, v: &Validator, what: &str) -> Value {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        assert_eq!(self.content_type, JSON_CT, "{what}");
        let doc: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", self.body));
        check(v, &doc, what);
        doc
    }

    /// A JSON error of the spec's shape with this status.
    #[track_caller]
    fn error(&self, want: u16, s: &Schemas, what: &str) {
        let doc = self.json(want, &s.errors, what);
        assert_eq!(doc[0]["code"], want, "{what}");
    }

    /// Well-formed XML with this root; returns the root's child element names.
    #[track_caller]
    fn xml(&self, want: u16, root: &str, what: &str) -> Vec<String> {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        assert_eq!(self.content_type, XML_CT, "{what}");
        let doc = roxmltree::Document::parse(&self.body)
            .unwrap_or_else(|e| panic!("{what}: malformed XML ({e}): {}", self.body));
        assert_eq!(doc.root_element().tag_name().name(), root, "{what}");
        doc.root_element()
            .children()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name().to_string())
            .collect()
    }

    /// An XML error of the spec's shape with this status.
    #[track_caller]
    fn xml_error(&self, want: u16, what: &str) {
        let children = self.xml(want, "errors", what);
        assert_eq!(children, ["error"], "{what}");
        assert!(
            self.body.contains(&format!("<code>{want}</code>")),
            "{what}: {}",
            self.body
        );
        assert!(self.body.contains("<description>"), "{what}");
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Answer {
        status,
        content_type,
        body: resp.text().await.unwrap(),
    }
}

async fn get(app: &App, path: &str) -> Answer {
    let resp = app
        .client
        .get(format!("{}/open311/v2/{path}", app.url))
        .send()
        .await
        .unwrap();
    answer(resp).await
}

async fn post(app: &App, path: &str, form: &[(&str, &str)]) -> Answer {
    let resp = app
        .client
        .post(format!("{}/open311/v2/{path}", app.url))
        .form(form)
        .send()
        .await
        .unwrap();
    answer(resp).await
}

/// A point inside grid1's own grid, and the grid's code.
async fn grid1_point(app: &App) -> (String, f64, f64) {
    let grid1 = app.login("grid1").await;
    let (s, orgs) = app.get("/api/v1/orgs?include=boundary", Some(&grid1)).await;
    assert_eq!(s, 200);
    let grid = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["level"] == "grid" && o["boundary"].is_object())
        .expect("grid1 sees its own grid with a boundary")
        .clone();
    let (lat, lng) = inside(&grid["boundary"]);
    (grid["code"].as_str().unwrap().to_string(), lat, lng)
}

#[tokio::test]
async fn open311_georeport_v2() {
    let s = Schemas::load();
    self_check(&s);
    let data = temp_dir("open311");
    let app = App::demo(&data, NOW);

    // --- discovery and services ---------------------------------------------------------
    let d = get(&app, "discovery.json")
        .await
        .json(200, &s.discovery, "discovery");
    assert!(
        d["endpoints"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/open311/v2")
    );
    get(&app, "discovery.xml")
        .await
        .xml(200, "discovery", "discovery.xml");

    let services = get(&app, "services.json")
        .await
        .json(200, &s.services, "services");
    let codes: Vec<String> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["service_code"].as_str().unwrap().to_string())
        .collect();
    assert!(codes.len() >= 10 && codes.iter().any(|c| c == "public_facilities"));
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["metadata"] == true
                && x["type"] == "realtime"
                && x["group"].is_string()
                && x["keywords"].is_string())
    );
    let pf = &services[codes.iter().position(|c| c == "public_facilities").unwrap()];
    assert_eq!(pf["service_name"], "公用设施");
    let children = get(&app, "services.xml")
        .await
        .xml(200, "services", "services.xml");
    assert_eq!(children.len(), codes.len());
    assert!(children.iter().all(|c| c == "service"));

    for code in &codes {
        let def = get(&app, &format!("services/{code}.json")).await.json(
            200,
            &s.service_definition,
            &format!("definition of {code}"),
        );
        assert_eq!(def["service_code"], code.as_str());
        let urgency = def["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == "urgency")
            .expect("every service asks for urgency");
        assert_eq!(urgency["datatype"], "singlevaluelist");
        assert!(!urgency["values"].as_array().unwrap().is_empty());
        let landmark = def["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == "landmark")
            .unwrap();
        assert_eq!(landmark["datatype"], "string");
        get(&app, &format!("services/{code}.xml")).await.xml(
            200,
            "service_definition",
            &format!("definition of {code} in XML"),
        );
    }

    // --- unknown resources and formats ---------------------------------------------------
    get(&app, "services/no_such_service.json")
        .await
        .error(404, &s, "unknown service");
    get(&app, "services/no_such_service.xml")
        .await
        .xml_error(404, "unknown service in XML");
    get(&app, "services.csv")
        .await
        .error(400, &s, "unknown format");
    get(&app, "services").await.error(404, &s, "no format");
    get(&app, "nothing.json")
        .await
        .error(404, &s, "unknown resource");
    get(&app, "a/b/c.xml")
        .await
        .xml_error(404, "unknown nested resource");
    get(&app, "services.json?jurisdiction_id=nowhere")
        .await
        .error(404, &s, "unknown jurisdiction");

    // --- POST requests: every refusal ----------------------------------------------------
    let (grid_code, lat, lng) = grid1_point(&app).await;
    let (lat_s, lng_s) = (lat.to_string(), lng.to_string());
    let base: Vec<(&str, &str)> = vec![
        ("api_key", "demo"),
        ("service_code", "public_facilities"),
        ("lat", &lat_s),
        ("long", &lng_s),
    ];
    let without = |drop: &[&str], add: &[(&'static str, &'static str)]| {
        let mut f: Vec<(&str, &str)> = base
            .iter()
            .copied()
            .filter(|(k, _)| !drop.contains(k))
            .collect();
        f.extend_from_slice(add);
        f
    };
    post(&app, "requests.json", &without(&["api_key"], &[]))
        .await
        .error(403, &s, "no api_key");
    post(
        &app,
        "requests.json",
        &without(&["api_key"], &[("api_key", "")]),
    )
    .await
    .error(403, &s, "empty api_key");
    post(
        &app,
        "requests.json",
        &without(&["api_key"], &[("api_key", "wrong")]),
    )
    .await
    .error(403, &s, "bad api_key");
    post(
        &app,
        "requests.xml",
        &without(&["api_key"], &[("api_key", "wrong")]),
    )
    .await
    .xml_error(403, "bad api_key in XML");
    post(&app, "requests.json", &without(&["service_code"], &[]))
        .await
        .error(400, &s, "no service_code");
    post(
        &app,
        "requests.json",
        &without(&["service_code"], &[("service_code", "no_such_service")]),
    )
    .await
    .error(404, &s, "unknown service_code");
    post(&app, "requests.json", &without(&["lat", "long"], &[]))
        .await
        .error(400, &s, "no location");
    post(
        &app,
        "requests.json",
        &without(
            &["lat", "long"],
            &[("address_string", ""), ("address_id", "")],
        ),
    )
    .await
    .error(400, &s, "empty location");
    post(&app, "requests.json", &without(&["long"], &[]))
        .await
        .error(400, &s, "lat without long");
    post(
        &app,
        "requests.json",
        &without(&["lat"], &[("lat", "north")]),
    )
    .await
    .error(400, &s, "lat not a number");
    post(&app, "requests.json", &without(&["lat"], &[("lat", "95")]))
        .await
        .error(400, &s, "lat out of range");
    let long_text = "长".repeat(4001);
    let mut f = base.clone();
    f.push(("description", &long_text));
    post(&app, "requests.json", &f)
        .await
        .error(400, &s, "description over 4000 characters");
    for (bad, what) in [
        (("attribute[urgency]", "sideways"), "value outside the list"),
        (("attribute[no_such]", "1"), "unknown attribute"),
        (("email", "not-an-address"), "bad email"),
        (("media_url", "ftp://example.com/x.jpg"), "bad media_url"),
        (("phone", "call me"), "bad phone"),
    ] {
        post(&app, "requests.json", &without(&[], &[bad]))
            .await
            .error(400, &s, what);
    }
    let resp = app
        .client
        .post(format!("{}/open311/v2/requests.json", app.url))
        .header("content-type", "application/json")
        .body(r#"{"api_key":"demo"}"#)
        .send()
        .await
        .unwrap();
    answer(resp).await.error(400, &s, "a JSON body");

    // --- POST requests: a report inside grid1's grid --------------------------------------
    let marker = "Open311测试:小区北门路灯不亮已经三天";
    let created = post(
        &app,
        "requests.json",
        &without(
            &[],
            &[
                ("description", marker),
                ("attribute[urgency]", "urgent"),
                ("attribute[affected][]", "pedestrians"),
                ("attribute[affected][]", "residents"),
                ("attribute[landmark]", "北门便利店旁"),
                ("email", "li.lei@example.com"),
                ("first_name", "雷"),
                ("last_name", "李"),
                ("phone", "13900001234"),
                ("account_id", "acct-42"),
                ("device_id", "device-7"),
                ("media_url", "https://example.com/photos/1.jpg"),
                ("address_string", ""),
            ],
        ),
    )
    .await
    .json(200, &s.created, "POST requests");
    let number = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(created[0].get("token").is_none());
    assert_eq!(created[0]["account_id"], "acct-42");
    assert!(created[0]["service_notice"].is_string());

    // GET it back: open, located, in +08:00, and nothing personal.
    let one = get(&app, &format!("requests/{number}.json")).await;
    for secret in [
        "li.lei@example.com",
        "13900001234",
        "李雷",
        "acct-42",
        "device-7",
    ] {
        assert!(!one.body.contains(secret), "{secret} leaked: {}", one.body);
    }
    let one = one.json(200, &s.requests, "GET requests/{id}");
    assert_eq!(one.as_array().unwrap().len(), 1);
    let r = &one[0];
    assert_eq!(r["service_request_id"], number.as_str());
    assert_eq!(r["status"], "open");
    assert_eq!(r["service_code"], "public_facilities");
    assert_eq!(r["service_name"], "公用设施");
    assert_eq!(r["description"], marker);
    assert_eq!(r["media_url"], "https://example.com/photos/1.jpg");
    assert!((r["lat"].as_f64().unwrap() - lat).abs() < 1e-9);
    assert!((r["long"].as_f64().unwrap() - lng).abs() < 1e-9);
    assert!(
        r["requested_datetime"]
            .as_str()
            .unwrap()
            .ends_with("+08:00"),
        "{r}"
    );
    assert!(r["agency_responsible"].is_string());
    let children = get(&app, &format!("requests/{number}.xml")).await.xml(
        200,
        "service_requests",
        "GET requests/{id}.xml",
    );
    assert_eq!(children, ["request"]);
    get(&app, "requests/19990101-000001.json")
        .await
        .error(404, &s, "unknown request");
    get(&app, "requests/19990101-000001.xml")
        .await
        .xml_error(404, "unknown request in XML");

    // Tokens: the number itself.
    let t = get(&app, &format!("tokens/{number}.json"))
        .await
        .json(200, &s.tokens, "token");
    assert_eq!(t[0]["service_request_id"], number.as_str());
    get(&app, &format!("tokens/{number}.xml"))
        .await
        .xml(200, "service_requests", "token in XML");
    get(&app, "tokens/no-such-token.json")
        .await
        .error(404, &s, "unknown token");

    // XML POST.
    let mut f = base.clone();
    f.push(("description", "Open311 XML 测试 <井盖> & \"缺失\""));
    let xml_created = post(&app, "requests.xml", &f).await;
    let children = xml_created.xml(200, "service_requests", "POST requests.xml");
    assert_eq!(children, ["request"]);
    assert!(xml_created.body.contains("<service_request_id>"));

    // --- the dispatcher sees it in grid1's grid, with channel open311 ---------------------
    let dispatcher = app.login("dispatcher").await;
    let (st, list) = app
        .get(
            "/api/v1/cases?q=%E5%B0%8F%E5%8C%BA%E5%8C%97%E9%97%A8%E8%B7%AF%E7%81%AF&limit=10",
            Some(&dispatcher),
        )
        .await;
    assert_eq!(st, 200, "{list}");
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == number.as_str())
        .expect("the dispatcher's queue has the Open311 report")["id"]
        .as_i64()
        .unwrap();
    let (st, case) = app
        .get(&format!("/api/v1/cases/{id}"), Some(&dispatcher))
        .await;
    assert_eq!(st, 200, "{case}");
    assert_eq!(case["area_org"], grid_code.as_str());
    assert_eq!(case["channel"], "open311");
    assert_eq!(case["category"], "public_facilities");
    assert_eq!(case["reporter"]["phone"], "139****1234");
    app.act(
        &dispatcher,
        id,
        json!({"action": "accept", "expected_version": case["version"],
               "handling_mode": "immediate", "difficulty": "simple"}),
        200,
    )
    .await;

    // --- GET requests: lists and filters -------------------------------------------------
    let all = get(&app, "requests.json")
        .await
        .json(200, &s.requests, "GET requests");
    let all = all.as_array().unwrap();
    assert!(all.len() > 10 && all.len() <= 1000, "{}", all.len());
    assert!(
        all.iter()
            .any(|r| r["service_request_id"] == number.as_str())
    );
    let ours = all
        .iter()
        .find(|r| r["service_request_id"] == number.as_str())
        .unwrap();
    assert!(ours["expected_datetime"].is_string(), "accepted: {ours}");
    assert!(all.iter().any(|r| r["status"] == "closed"));

    let filtered = get(
        &app,
        "requests.json?service_code=public_facilities&status=open",
    )
    .await
    .json(200, &s.requests, "GET requests by code and status");
    let filtered = filtered.as_array().unwrap();
    assert!(
        filtered
            .iter()
            .all(|r| r["service_code"] == "public_facilities" && r["status"] == "open")
    );
    assert!(
        filtered
            .iter()
            .any(|r| r["service_request_id"] == number.as_str())
    );
    let closed = get(&app, "requests.json?status=closed").await.json(
        200,
        &s.requests,
        "GET closed requests",
    );
    let closed = closed.as_array().unwrap();
    assert!(!closed.is_empty() && closed.iter().all(|r| r["status"] == "closed"));

    let by_id = get(
        &app,
        &format!(
            "requests.json?service_request_id={number},nope&status=closed&service_code=greening"
        ),
    )
    .await
    .json(200, &s.requests, "GET requests by id list");
    assert_eq!(by_id.as_array().unwrap().len(), 1, "ids override the rest");
    assert_eq!(by_id[0]["service_request_id"], number.as_str());

    let today = get(
        &app,
        "requests.json?start_date=2026-11-24T00:00:00%2B08:00&end_date=2026-11-25T00:00:00%2B08:00&limit=50",
    )
    .await
    .json(200, &s.requests, "GET requests today");
    assert!(
        today
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["service_request_id"] == number.as_str())
    );
    get(
        &app,
        "requests.json?service_code=&status=&start_date=&end_date=&service_request_id=",
    )
    .await
    .json(200, &s.requests, "empty parameters count as absent");
    get(&app, "requests.xml?limit=5")
        .await
        .xml(200, "service_requests", "GET requests.xml");

    for (query, want, what) in [
        (
            "start_date=2026-01-01T00:00:00%2B08:00&end_date=2026-06-01T00:00:00%2B08:00",
            400,
            "more than 90 days",
        ),
        (
            "start_date=2026-11-20T00:00:00Z&end_date=2026-11-10T00:00:00Z",
            400,
            "end before start",
        ),
        ("start_date=2026-11-20T00:00:00", 400, "no time zone"),
        ("start_date=last+week", 400, "not a date"),
        ("status=pending", 400, "unknown status"),
        ("limit=0", 400, "bad limit"),
        ("service_code=no_such_service", 404, "unknown service_code"),
        ("jurisdiction_id=nowhere", 404, "unknown jurisdiction"),
        ("api_key=wrong", 403, "a bad api_key"),
    ] {
        get(&app, &format!("requests.json?{query}"))
            .await
            .error(want, &s, what);
    }
    get(
        &app,
        "requests.xml?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z",
    )
    .await
    .xml_error(400, "more than 90 days in XML");

    // --- servicerequestupdates (mySociety) -------------------------------------------------
    get(&app, "servicerequestupdates.json")
        .await
        .error(403, &s, "updates without api_key");
    get(&app, "servicerequestupdates.json?api_key=wrong")
        .await
        .error(403, &s, "updates with a bad api_key");
    let window = "start_date=2026-11-24T09:00:00%2B08:00&end_date=2026-11-25T09:00:00%2B08:00";
    let updates = get(
        &app,
        &format!("servicerequestupdates.json?api_key=demo&{window}"),
    )
    .await
    .json(200, &s.updates, "servicerequestupdates");
    let accepted = updates
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["service_request_id"] == number.as_str())
        .unwrap_or_else(|| panic!("an update for {number}: {updates:#}"));
    assert_eq!(accepted["status"], "INVESTIGATING");
    assert_eq!(accepted["external_status_code"], "accepted");
    assert!(
        accepted["updated_datetime"]
            .as_str()
            .unwrap()
            .ends_with("+08:00")
    );
    let children = get(
        &app,
        &format!("servicerequestupdates.xml?api_key=demo&{window}"),
    )
    .await
    .xml(200, "service_request_updates", "servicerequestupdates.xml");
    assert!(!children.is_empty() && children.iter().all(|c| c == "request_update"));
    get(
        &app,
        "servicerequestupdates.json?api_key=demo&start_date=2026-01-01T00:00:00Z&end_date=2026-11-01T00:00:00Z",
    )
    .await
    .error(400, &s, "updates over more than 90 days");

    // --- methods -------------------------------------------------------------------------
    let resp = app
        .client
        .delete(format!("{}/open311/v2/requests.json", app.url))
        .send()
        .await
        .unwrap();
    let a = answer(resp).await;
    assert_eq!(a.status, 405, "{}", a.body);
    check(
        &s.errors,
        &serde_json::from_str(&a.body).unwrap(),
        "405 body",
    );
}
