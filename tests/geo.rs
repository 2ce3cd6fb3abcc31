//! Boundaries in, reports routed to the right grid: org import through the API (with the
//! routing index reloaded at once) and through `gridloop org import`, micro-grids, GCJ-02.

mod common;

use common::{App, NOW, db_value, inside, run_cli, temp_dir};
use gridloop_domain::case::Location;
use gridloop_domain::geo::wgs84_to_gcj02;
use serde_json::{Value, json};

/// A small square around (lat, lng), `r` degrees from the centre to each side.
fn square(lat: f64, lng: f64, r: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [lng - r, lat - r], [lng + r, lat - r], [lng + r, lat + r], [lng - r, lat + r], [lng - r, lat - r]
    ]]})
}

/// The same square with every corner given in GCJ-02 (as 高德/腾讯 maps draw it).
fn square_gcj02(lat: f64, lng: f64, r: f64) -> Value {
    let mut g = square(lat, lng, r);
    for p in g["coordinates"][0].as_array_mut().unwrap() {
        let w = Location {
            lat: p[1].as_f64().unwrap(),
            lng: p[0].as_f64().unwrap(),
        };
        let c = wgs84_to_gcj02(w);
        *p = json!([c.lng, c.lat]);
    }
    g
}

fn feature(code: &str, name: &str, level: &str, parent: Option<&str>, geometry: Value) -> Value {
    json!({"type": "Feature", "properties": {"code": code, "name": name, "level": level, "parent": parent},
           "geometry": geometry})
}

/// Reports as a resident and returns the case's area org, looked up by number as `admin`.
async fn public_report_area(app: &App, admin: &str, location: Value, crs: Option<&str>) -> String {
    let mut body = json!({"description": "路灯不亮", "location": location,
                          "reporter": {"name": "王女士", "phone": "13800001234"}});
    if let Some(crs) = crs {
        body["crs"] = json!(crs);
    }
    let (s, created) = app.post("/api/v1/public/reports", None, body).await;
    assert_eq!(s, 201, "{created}");
    let number = created["number"].as_str().unwrap();
    let (s, list) = app
        .get(&format!("/api/v1/cases?q={number}"), Some(admin))
        .await;
    assert_eq!(s, 200, "{list}");
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == number)
        .unwrap_or_else(|| panic!("case {number} not listed: {list}"));
    item["area_org"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn imported_micro_grids_route_reports_at_once() {
    let data = temp_dir("geo");
    let app = App::demo(&data, NOW);
    let admin = app.login("admin").await;
    let dispatcher = app.login("dispatcher").await;

    let (_, orgs) = app.get("/api/v1/orgs?include=boundary", Some(&admin)).await;
    let grids: Vec<&Value> = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["level"] == "grid" && o["boundary"].is_object())
        .collect();
    assert!(grids.len() >= 2);
    let (grid, other) = (grids[0], grids[1]);
    let grid_code = grid["code"].as_str().unwrap();
    let (lat, lng) = inside(&grid["boundary"]);
    // A second spot in the same grid: halfway from the centre to a corner.
    let corner = &grid["boundary"]["coordinates"][0][0];
    let (lat2, lng2) = (
        (lat + corner[1].as_f64().unwrap()) / 2.0,
        (lng + corner[0].as_f64().unwrap()) / 2.0,
    );
    let unit_a = format!("{grid_code}M1");
    let unit_b = format!("{grid_code}M2");

    // Before: the centre routes to the grid itself.
    assert_eq!(
        public_report_area(&app, &admin, json!({"lat": lat, "lng": lng}), None).await,
        grid_code
    );

    // Only administrators import.
    let mut gcj_unit = feature(
        &unit_b,
        "幸福小区2幢",
        "unit",
        Some(grid_code),
        square_gcj02(lat2, lng2, 0.0002),
    );
    gcj_unit["properties"]["crs"] = json!("gcj02");
    let file = json!({"type": "FeatureCollection", "features": [
        gcj_unit,
        feature(&unit_a, "幸福小区1幢", "unit", Some(grid_code), square(lat, lng, 0.0002)),
    ]});
    let (s, v) = app
        .post("/api/v1/orgs/import", Some(&dispatcher), file.clone())
        .await;
    assert_eq!(s, 403, "{v}");

    // A bad file: 422, every problem by index, nothing written.
    let bad = json!({"type": "FeatureCollection", "features": [
        feature(&unit_a, "a", "unit", Some(grid_code), square(lat, lng, 0.0002)),
        feature("X1", "bow tie", "unit", Some(grid_code),
            json!({"type": "Polygon", "coordinates": [[[lng, lat], [lng + 0.001, lat + 0.001], [lng + 0.001, lat], [lng, lat + 0.0005], [lng, lat]]]})),
        feature("X2", "orphan", "unit", Some("NO_SUCH_GRID"), Value::Null),
        feature("X3", "a grid under a grid", "grid", Some(grid_code), Value::Null),
    ]});
    let (s, v) = app.post("/api/v1/orgs/import", Some(&admin), bad).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_features");
    let at: Vec<u64> = v["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(at, [1, 2, 3], "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("feature #1")
    );
    let (s, v) = app
        .post(
            "/api/v1/orgs/import",
            Some(&admin),
            json!({"type": "Feature"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");

    // A dry run says what would happen and changes nothing.
    let (s, v) = app
        .post(
            "/api/v1/orgs/import?dry_run=true",
            Some(&admin),
            file.clone(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["created"].as_u64(), v["dry_run"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(
        public_report_area(&app, &admin, json!({"lat": lat, "lng": lng}), None).await,
        grid_code
    );

    // The import: children before parents is fine, the index is reloaded at once.
    let (s, v) = app
        .post("/api/v1/orgs/import", Some(&admin), file.clone())
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"], 2);
    assert_eq!(v["with_boundary"], 2);
    assert!(v["routed_boundaries"].as_u64().unwrap() > 50);
    let (_, orgs) = app.get("/api/v1/orgs?include=boundary", Some(&admin)).await;
    let stored = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["code"] == unit_b.as_str())
        .expect("the GCJ-02 unit is listed");
    assert_eq!(stored["parent"], grid_code);
    let (slat, slng) = inside(&stored["boundary"]);
    assert!(
        (slat - lat2).abs() < 1e-5 && (slng - lng2).abs() < 1e-5,
        "stored in WGS-84: centre ({slat}, {slng}) vs ({lat2}, {lng2})"
    );

    // A report inside the new micro-grid goes to it; the rest of the grid stays the grid's.
    assert_eq!(
        public_report_area(&app, &admin, json!({"lat": lat, "lng": lng}), None).await,
        unit_a
    );
    assert_eq!(
        public_report_area(
            &app,
            &admin,
            json!({"lat": lat + 0.0005, "lng": lng - 0.0005}),
            None
        )
        .await,
        grid_code
    );
    // A report located in GCJ-02 lands in the unit drawn in GCJ-02…
    let g = wgs84_to_gcj02(Location {
        lat: lat2,
        lng: lng2,
    });
    assert_eq!(
        public_report_area(
            &app,
            &admin,
            json!({"lat": g.lat, "lng": g.lng}),
            Some("gcj02")
        )
        .await,
        unit_b
    );
    // …and in an ordinary grid, also through the staff intake.
    let (olat, olng) = inside(&other["boundary"]);
    let g = wgs84_to_gcj02(Location {
        lat: olat,
        lng: olng,
    });
    let (s, case) = app
        .post(
            "/api/v1/cases",
            Some(&admin),
            json!({"channel": "hotline", "title": "井盖缺失", "description": "高德定位",
                   "location": {"lat": g.lat, "lng": g.lng}, "crs": "gcj02",
                   "reporter": {"name": "李先生", "phone": "13900005678"}}),
        )
        .await;
    assert_eq!(s, 201, "{case}");
    assert_eq!(case["area_org"], other["code"]);

    // Re-importing renames and re-bounds; moving an org is refused.
    let mut again = file.clone();
    again["features"][1]["properties"]["name"] = json!("幸福小区1幢(新)");
    let (s, v) = app.post("/api/v1/orgs/import", Some(&admin), again).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["created"].as_u64(), v["updated"].as_u64()),
        (Some(0), Some(2))
    );
    let moved = json!({"type": "FeatureCollection", "features": [
        feature(&unit_a, "x", "unit", Some(other["code"].as_str().unwrap()), Value::Null),
    ]});
    let (s, v) = app.post("/api/v1/orgs/import", Some(&admin), moved).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot move")
    );
}

fn count_orgs(data: &std::path::Path) -> i64 {
    db_value(data, "SELECT count(*) FROM orgs").parse().unwrap()
}

#[test]
fn cli_import_on_a_fresh_data_dir() {
    let dir = temp_dir("geo-cli");
    let data = dir.join("data");
    let data_s = data.to_str().unwrap();
    let (code, out) = run_cli(
        &[
            "org",
            "add",
            "--data",
            data_s,
            "--code",
            "330782",
            "--name",
            "义乌市",
            "--level",
            "city",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");

    // Children before parents, one grid drawn in GCJ-02 for the whole file.
    let good = json!({"type": "FeatureCollection", "features": [
        feature("33078200100101", "一网格", "grid", Some("330782001001"), square(29.281, 120.051, 0.002)),
        feature("33078200100102", "二网格", "grid", Some("330782001001"), square(29.281, 120.055, 0.002)),
        feature("330782001001", "锦都社区", "community", Some("330782001"), Value::Null),
        feature("330782001", "稠江街道", "street", Some("330782"), square(29.281, 120.053, 0.01)),
    ], "crs": "gcj02"});
    let file = dir.join("good.geojson");
    std::fs::write(&file, good.to_string()).unwrap();
    let file_s = file.to_str().unwrap();

    let (code, out) = run_cli(
        &["org", "import", file_s, "--data", data_s, "--dry-run"],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would import 4 orgs"), "{out}");
    assert_eq!(count_orgs(&data), 1, "a dry run writes nothing");

    let (code, out) = run_cli(&["org", "import", file_s, "--data", data_s], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported 4 orgs"), "{out}");
    assert!(
        out.contains("4 created") && out.contains("3 with a boundary"),
        "{out}"
    );
    assert_eq!(count_orgs(&data), 5);

    // A bad file: every bad feature named with its index and reason, exit 1, nothing written.
    let bad = json!({"type": "FeatureCollection", "features": [
        feature("33078200100103", "好的", "grid", Some("330782001001"), square(29.29, 120.06, 0.001)),
        feature("33078200100104", "开口环", "grid", Some("330782001001"),
            json!({"type": "Polygon", "coordinates": [[[120.0, 29.0], [120.1, 29.0], [120.1, 29.1], [120.0, 29.1]]]})),
        feature("330782002", "街道挂错", "street", Some("330782001"), Value::Null),
        feature("33078200100105", "孤儿", "grid", Some("330782009009"), Value::Null),
        json!({"type": "Feature", "properties": {"code": "X", "level": "unit"}, "geometry": null}),
    ]});
    let file = dir.join("bad.geojson");
    std::fs::write(&file, bad.to_string()).unwrap();
    let (code, out) = run_cli(
        &["org", "import", file.to_str().unwrap(), "--data", data_s],
        None,
    );
    assert_eq!(code, 1, "{out}");
    for needle in [
        "feature #1 (33078200100104): geometry: outer ring: is not closed",
        "feature #2 (330782002): a street cannot hang under a street",
        "feature #3 (33078200100105): unknown parent org 330782009009",
        "feature #4 (X): properties.name is missing",
        "4 problems",
        "nothing was imported",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains("feature #0"), "{out}");
    assert_eq!(count_orgs(&data), 5, "nothing written");

    // Not JSON at all.
    std::fs::write(&file, "{not json").unwrap();
    let (code, out) = run_cli(
        &["org", "import", file.to_str().unwrap(), "--data", data_s],
        None,
    );
    assert_eq!(code, 1, "{out}");

    // Or the root in the file itself, on another fresh folder.
    let data2 = dir.join("data2");
    let rooted = json!({"type": "FeatureCollection", "features": [
        feature("330782001", "稠江街道", "street", Some("330782"), Value::Null),
        feature("330782", "义乌市", "city", None, Value::Null),
    ]});
    let file = dir.join("rooted.geojson");
    std::fs::write(&file, rooted.to_string()).unwrap();
    let (code, out) = run_cli(
        &[
            "org",
            "import",
            file.to_str().unwrap(),
            "--data",
            data2.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(count_orgs(&data2), 2);
}
