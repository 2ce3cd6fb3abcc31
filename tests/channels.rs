//! Every way in besides the plain report, through HTTP against the real binary.

mod common;

use common::{App, NOW, inside, temp_dir};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A tiny but well-formed-looking PNG: the type is read from the magic bytes.
fn png(seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(std::iter::repeat_n(seed, 64));
    b
}

async fn upload(app: &App, token: &str, bytes: Vec<u8>) -> String {
    let r = app
        .client
        .post(format!("{}/api/v1/attachments", app.url))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn camera(app: &App, key: &str, body: &Value, sign_with: &str) -> (u16, Value) {
    let raw = body.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(sign_with.as_bytes()).unwrap();
    mac.update(raw.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    app.post_raw(
        "/api/v1/hooks/camera",
        None,
        raw,
        &[("X-Api-Key", key), ("X-Signature", &sig)],
    )
    .await
}

#[tokio::test]
async fn every_channel_in() {
    let data = temp_dir("channels");
    let app = App::demo(&data, NOW);
    let dispatcher = app.login("dispatcher").await;
    let grid1 = app.login("grid1").await;
    let leader = app.login("leader").await;
    let volunteer = app.login("volunteer1").await;

    let (_, orgs) = app.get("/api/v1/orgs?include=boundary", Some(&grid1)).await;
    let grid = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["level"] == "grid")
        .unwrap()
        .clone();
    let grid_code = grid["code"].as_str().unwrap().to_string();
    let (lat, lng) = inside(&grid["boundary"]);

    // --- night visit: concerns become linked cases; the diary shows how each stands -------
    let (s, visit) = app
        .post(
            "/api/v1/night-visits",
            Some(&leader),
            json!({"group_name": "锦都夜访组", "leader": "陈书记", "visited_at": "2026-11-23T20:00:00+08:00",
                   "place": "锦都社区3幢", "households": 12, "people_met": 20, "notes": "走访租户",
                   "concerns": [{"title": "楼道灯坏了", "location": {"lat": lat, "lng": lng}},
                                {"title": "垃圾清运不及时", "description": "三天没清运"}]}),
        )
        .await;
    assert_eq!(s, 201, "{visit}");
    assert_eq!(visit["concerns"].as_array().unwrap().len(), 2);
    let concern = &visit["concerns"][0];
    let (_, c) = app
        .get(
            &format!("/api/v1/cases/{}", concern["case_id"]),
            Some(&dispatcher),
        )
        .await;
    assert_eq!(c["channel"], "night_visit");
    assert_eq!(
        c["area_org"],
        grid_code.as_str(),
        "a located concern goes to its grid"
    );
    let (s, diary) = app.get("/api/v1/night-visits", Some(&leader)).await;
    assert_eq!(s, 200);
    assert!(
        diary["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == visit["id"])
    );
    let (s, _) = app
        .post(
            "/api/v1/night-visits",
            Some(&volunteer),
            json!({"group_name": "x", "leader": "y", "visited_at": NOW, "place": "z"}),
        )
        .await;
    assert_eq!(s, 403);

    // --- patrol, fixed on the spot: closed at once with the photo as evidence --------------
    let before = upload(&app, &grid1, png(1)).await;
    let after = upload(&app, &grid1, png(2)).await;
    let (s, c) = app
        .post(
            "/api/v1/quick-reports",
            Some(&grid1),
            json!({"channel": "grid_patrol", "title": "共享单车乱停", "location": {"lat": lat, "lng": lng},
                   "photos": [before], "fixed_on_the_spot": true, "result": "已摆放整齐", "result_photos": [after]}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "closed");
    assert_eq!(c["closed_on_time"], true);
    assert_eq!(c["result_attachments"][0], after.as_str());
    let (s, v) = app
        .post("/api/v1/quick-reports", Some(&grid1), json!({"channel": "grid_patrol", "title": "x", "fixed_on_the_spot": true, "result": "done"}))
        .await;
    assert_eq!(s, 422, "a fix on the spot needs a photo: {v}");
    // The photo is served back to staff, not to strangers.
    let r = app
        .client
        .get(format!("{}/api/v1/attachments/{}", app.url, before))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(format!("{}/api/v1/attachments/{}", app.url, before))
        .bearer_auth(&grid1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    // Real photos get a thumbnail.
    let photo = upload(&app, &grid1, real_jpeg()).await;
    let r = app
        .client
        .get(format!("{}/api/v1/attachments/{photo}/thumbnail", app.url))
        .bearer_auth(&grid1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    // A file that is not an image is refused whatever it is called.
    let r = app
        .client
        .post(format!("{}/api/v1/attachments", app.url))
        .bearer_auth(&grid1)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // --- tower-group relay: the commander follows the case ---------------------------------
    let (_, groups) = app.get("/api/v1/tower-groups", Some(&volunteer)).await;
    let group = groups["items"][0]["code"].as_str().unwrap().to_string();
    let (s, c) = app
        .post("/api/v1/tower-relays", Some(&volunteer),
              json!({"tower_group": group, "resident_name": "李阿姨", "resident_phone": "13700002222", "title": "楼下有流浪狗"}))
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["channel"], "tower_group");
    let (s, _) = app
        .get(&format!("/api/v1/cases/{}", c["id"]), Some(&volunteer))
        .await;
    assert_eq!(s, 200, "the commander sees the relayed case and its answer");

    // --- hotline intake: the caller's history, to the operator only ------------------------
    let (s, h) = app
        .get("/api/v1/hotline/callers/137-0000-2222", Some(&dispatcher))
        .await;
    assert_eq!(s, 200);
    assert!(
        h["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == c["id"])
    );
    assert_eq!(h["phone"], "137****2222");
    let (s, _) = app
        .get("/api/v1/hotline/callers/13700002222", Some(&grid1))
        .await;
    assert_eq!(s, 403);
    let (s, call) = app
        .post(
            "/api/v1/hotline/calls",
            Some(&dispatcher),
            json!({"phone": "13700002222", "summary": "询问流浪狗处理进度", "case_id": c["id"]}),
        )
        .await;
    assert_eq!(s, 201, "{call}");
    let (_, h) = app
        .get("/api/v1/hotline/callers/13700002222", Some(&dispatcher))
        .await;
    assert_eq!(h["calls"][0]["summary"], "询问流浪狗处理进度");

    // --- camera alerts: signed, idempotent, repeats join one case ---------------------------
    let alert = |id: &str| {
        json!({"alert_id": id, "camera_id": "CAM-0042", "alert_type": "burning",
        "location": {"lat": lat, "lng": lng}, "title": "焚烧垃圾", "snapshot": base64_png()})
    };
    let (s, _) = camera(&app, "demo", &alert("A-1"), "wrong-secret").await;
    assert_eq!(s, 401);
    let (s, _) = camera(&app, "no-such-key", &alert("A-1"), "no-such-key").await;
    assert_eq!(s, 401);
    let (s, first) = camera(&app, "demo", &alert("A-1"), "demo").await;
    assert_eq!(s, 201, "{first}");
    let (s, replay) = camera(&app, "demo", &alert("A-1"), "demo").await;
    assert_eq!(
        (s, replay["case_id"].clone(), replay["replayed"].clone()),
        (200, first["case_id"].clone(), json!(true))
    );
    let mut joined = 0;
    for i in 2..=30 {
        let (s, r) = camera(&app, "demo", &alert(&format!("A-{i}")), "demo").await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["case_id"], first["case_id"]);
        joined += i32::from(r["joined"] == true);
    }
    assert_eq!(joined, 29);
    let (_, c) = app
        .get(
            &format!("/api/v1/cases/{}", first["case_id"]),
            Some(&dispatcher),
        )
        .await;
    assert_eq!(c["channel"], "camera_alert");
    assert_eq!(
        c["attachments"].as_array().unwrap().len(),
        1,
        "the snapshot is kept"
    );
    assert_eq!(
        c["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "repeat")
            .count(),
        29
    );

    // --- duplicates: a second report nearby saying the same is offered, merged, followed ----
    let report = |desc: &str, phone: &str| json!({"description": desc, "location": {"lat": lat, "lng": lng}, "reporter": {"phone": phone}});
    let (_, a) = app
        .post(
            "/api/v1/public/reports",
            None,
            report("小区门口的路灯不亮了", "13811110000"),
        )
        .await;
    let (_, b) = app
        .post(
            "/api/v1/public/reports",
            None,
            report("门口路灯坏了不亮,晚上很黑", "13922220000"),
        )
        .await;
    let find = |number: &Value| {
        let number = number.as_str().unwrap().to_string();
        let app = &app;
        let dispatcher = dispatcher.clone();
        async move {
            let (_, l) = app
                .get(&format!("/api/v1/cases?q={number}"), Some(&dispatcher))
                .await;
            l["items"][0].clone()
        }
    };
    let original = find(&a["number"]).await;
    let dup = find(&b["number"]).await;
    let (s, cands) = app
        .get(
            &format!("/api/v1/cases/{}/duplicates", dup["id"]),
            Some(&dispatcher),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(cands["items"][0]["case_id"], original["id"], "{cands}");
    app.act(
        &dispatcher,
        dup["id"].as_i64().unwrap(),
        json!({"action": "merge", "expected_version": dup["version"], "into": original["id"]}),
        200,
    )
    .await;
    let (_, t) = app
        .get(
            &format!(
                "/api/v1/public/reports/{}?phone_last4=0000",
                b["number"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(t["status"], "merged");
    assert_eq!(
        t["original"]["number"], a["number"],
        "the duplicate's reporter follows the original: {t}"
    );

    // A resident's own photo comes back without its EXIF location.
    let photo = {
        let r = app
            .client
            .post(format!("{}/api/v1/public/attachments", app.url))
            .body(real_jpeg())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (s, r) = app
        .post("/api/v1/public/reports", None,
              json!({"description": "井盖缺失", "attachments": [photo], "reporter": {"phone": "13633334444"}}))
        .await;
    assert_eq!(s, 201);
    let number = r["number"].as_str().unwrap();
    let (_, t) = app
        .get(
            &format!("/api/v1/public/reports/{number}?phone_last4=4444"),
            None,
        )
        .await;
    assert_eq!(t["photos"][0], photo.as_str());
    let url = format!(
        "{}/api/v1/public/reports/{number}/photos/{photo}?phone_last4=4444",
        app.url
    );
    let bytes = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        bytes.starts_with(&[0xFF, 0xD8]) && !bytes.windows(3).any(|w| w == b"GPS"),
        "EXIF stripped"
    );
    let wrong = format!(
        "{}/api/v1/public/reports/{number}/photos/{photo}?phone_last4=0000",
        app.url
    );
    assert_eq!(app.client.get(&wrong).send().await.unwrap().status(), 404);
}

fn base64_png() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(png(9))
}

/// A real 1x1 JPEG carrying an EXIF (APP1) segment with a GPS marker.
fn real_jpeg() -> Vec<u8> {
    let body: &[u8] = &[
        0xFF, 0xDB, 0x00, 0x43, 0x00, 8, 6, 6, 7, 6, 5, 8, 7, 7, 7, 9, 9, 8, 10, 12, 20, 13, 12,
        11, 11, 12, 25, 18, 19, 15, 20, 29, 26, 31, 30, 29, 26, 28, 28, 32, 36, 46, 39, 32, 34, 44,
        35, 28, 28, 40, 55, 41, 44, 48, 49, 52, 52, 52, 31, 39, 57, 61, 56, 50, 60, 46, 51, 52, 50,
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, 0xFF, 0xC4,
        0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0xFF, 0xC4, 0x00, 0x14, 0x10, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x2A, 0x9F, 0xFF, 0xD9,
    ];
    let exif = b"Exif\0\0MM\0*GPS-29.28N";
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, (exif.len() + 2) as u8];
    out.extend_from_slice(exif);
    out.extend_from_slice(body);
    out
}
