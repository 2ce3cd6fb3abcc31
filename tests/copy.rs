//! `gridloop copy`: a deployment moves from the embedded store into another store (SQLite,
//! or PostgreSQL when the suite runs on it) with nothing lost, its chain intact, and the
//! server on the copy carrying on where the original stopped.

mod common;

use common::{App, NOW, db_value, fresh_pg_database, run_cli, temp_dir};
use serde_json::json;

#[tokio::test]
async fn a_deployment_moves_to_another_store_intact() {
    let source = temp_dir("copy-from");
    // The source is always the embedded store: that is the move deployments make.
    let app = App::start("demo", &source, NOW, None);
    let grid1 = app.login("grid1").await;
    let photo = app
        .client
        .post(format!("{}/api/v1/attachments", app.url))
        .bearer_auth(&grid1)
        .body(tiny_png())
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status().as_u16(), 201);
    let photo: serde_json::Value = photo.json().await.unwrap();
    let (s, case) = app
        .post_raw(
            "/api/v1/cases",
            Some(&grid1),
            json!({"channel": "grid_patrol", "title": "路灯不亮", "description": "锦都路夜里一片漆黑",
                   "attachments": [photo["id"]]})
            .to_string(),
            &[("Idempotency-Key", "copy-1")],
        )
        .await;
    assert_eq!(s, 201, "{case}");
    let id = case["id"].as_i64().unwrap();
    let (_, before) = app.get(&format!("/api/v1/cases/{id}"), Some(&grid1)).await;
    let dispatcher = app.login("dispatcher").await;
    let (_, stats_before) = app
        .get(
            "/api/v1/stats?org=330782003&from=2025-11-01&to=2026-11-30",
            Some(&dispatcher),
        )
        .await;
    app.kill();

    let target_dir = temp_dir("copy-to");
    let (to, target_url) = match fresh_pg_database("copy") {
        Some(url) => (url.clone(), Some(url)),
        None => (format!("sqlite:{}", target_dir.display()), None),
    };
    let from = format!("sqlite:{}", source.display());
    let (code, out) = run_cli(&["copy", "--from", &from, "--to", &to], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the chain of"), "{out}");

    if target_url.is_none() {
        // The copy kept the running totals itself (not left to a rebuild at the next open).
        let running: i64 = db_value(&target_dir, "SELECT count(*) FROM rollup_running")
            .parse()
            .unwrap();
        assert!(running > 0);
    }

    // A second copy into the now full target is refused, and changes nothing.
    let (code, out) = run_cli(&["copy", "--from", &from, "--to", &to], None);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("not empty"), "{out}");
    let (code, out) = run_cli(&["copy", "--from", "mysql://x", "--to", &to], None);
    assert_ne!(code, 0, "{out}");

    let app = App::start("serve", &target_dir, NOW, target_url.clone());
    let grid1 = app.login("grid1").await;
    let (s, after) = app.get(&format!("/api/v1/cases/{id}"), Some(&grid1)).await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(
        after, before,
        "the case and its timeline survive the move unchanged"
    );
    let dispatcher = app.login("dispatcher").await;
    let (_, stats_after) = app
        .get(
            "/api/v1/stats?org=330782003&from=2025-11-01&to=2026-11-30",
            Some(&dispatcher),
        )
        .await;
    assert_eq!(stats_after, stats_before, "the rollups moved too");

    // The photo came along, byte for byte.
    let bytes = app
        .client
        .get(format!(
            "{}/api/v1/attachments/{}",
            app.url,
            photo["id"].as_str().unwrap()
        ))
        .bearer_auth(&grid1)
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.status().as_u16(), 200);
    assert_eq!(bytes.bytes().await.unwrap().as_ref(), tiny_png().as_slice());

    // The idempotency key still replays, and new cases continue after the copied ones.
    let (s, replay) = app
        .post_raw(
            "/api/v1/cases",
            Some(&grid1),
            json!({"channel": "grid_patrol", "title": "路灯不亮", "description": "锦都路夜里一片漆黑",
                   "attachments": [photo["id"]]})
            .to_string(),
            &[("Idempotency-Key", "copy-1")],
        )
        .await;
    assert!(s == 200 || s == 201, "{replay}");
    assert_eq!(replay["id"], id);
    let (s, next) = app
        .post(
            "/api/v1/cases",
            Some(&grid1),
            json!({"channel": "grid_patrol", "title": "垃圾满溢", "description": "小区门口垃圾桶满了"}),
        )
        .await;
    assert_eq!(s, 201, "{next}");
    assert!(next["id"].as_i64().unwrap() > id);
    assert_ne!(next["number"], case["number"]);
    let (_, timeline) = app
        .get(
            &format!("/api/v1/cases/{}", next["id"].as_i64().unwrap()),
            Some(&grid1),
        )
        .await;
    assert_eq!(timeline["events"][0]["seq"], 1);
    app.kill();

    // The new events extend the copied chain.
    let target = match &target_url {
        Some(url) => vec!["--database-url", url],
        None => vec!["--data", target_dir.to_str().unwrap()],
    };
    let (code, out) = run_cli(&[&["audit", "verify"][..], &target].concat(), None);
    assert_eq!(code, 0, "{out}");

    // And back into the embedded store, which keeps no links of its own (each event's
    // previous hash is the hash of the event before it): the links the target wrote match,
    // the chain verifies, the case reads the same.
    let back = temp_dir("copy-back");
    let (code, out) = run_cli(
        &[
            "copy",
            "--from",
            &to,
            "--to",
            &format!("sqlite:{}", back.display()),
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the chain of"), "{out}");
    let app = App::start("serve", &back, NOW, None);
    let grid1 = app.login("grid1").await;
    let (s, again) = app.get(&format!("/api/v1/cases/{id}"), Some(&grid1)).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, before);
    app.kill();
}

/// A small PNG-looking file: the type is read from the magic bytes.
fn tiny_png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..200u8).map(|i| i.wrapping_mul(7)));
    b
}
