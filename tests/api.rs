//! The closed loop through HTTP against the real binary: every step, every error status of
//! CONTRACT.md, jurisdiction, idempotency, masking and reveal, stats, OpenAPI.

mod common;

use common::{App, NOW, inside, run_cli, tamper_event, temp_dir};
use serde_json::{Value, json};

async fn grid1_point(app: &App, token: &str) -> (String, f64, f64) {
    let (s, orgs) = app.get("/api/v1/orgs?include=boundary", Some(token)).await;
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
async fn the_closed_loop_and_every_error() {
    let data = temp_dir("loop");
    let app = App::demo(&data, NOW);
    let dispatcher = app.login("dispatcher").await;
    let grid1 = app.login("grid1").await;
    let dept1 = app.login("dept1").await;
    let inspector = app.login("inspector").await;

    // --- health, OpenAPI, unknown routes ---------------------------------------------
    let r = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, doc) = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/api/v1/cases",
        "/api/v1/cases/{id}/actions",
        "/api/v1/stats",
        "/api/v1/public/reports",
    ] {
        assert!(doc["paths"][p].is_object(), "OpenAPI lacks {p}");
    }
    let (s, v) = app.get("/api/v1/nothing-here", None).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found");

    // --- a resident reports at a point inside grid1's grid ----------------------------
    let (grid_code, lat, lng) = grid1_point(&app, &grid1).await;
    let (s, created) = app
        .post(
            "/api/v1/public/reports",
            None,
            json!({"description": "小区门口路灯坏了一个星期,晚上很黑", "category": "public_facilities",
                   "location": {"lat": lat, "lng": lng}, "reporter": {"name": "王小明", "phone": "13812345678"}}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let number = created["number"].as_str().unwrap().to_string();

    // The dispatcher finds it in the queue, routed to grid1's grid, reporter masked.
    let (s, list) = app
        .get(
            "/api/v1/cases?status=reported&q=路灯坏了&limit=10",
            Some(&dispatcher),
        )
        .await;
    assert_eq!(s, 200);
    let case = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == number.as_str())
        .unwrap()
        .clone();
    assert_eq!(case["area_org"], grid_code.as_str());
    assert_eq!(case["reporter"]["phone"], "138****5678");
    assert_eq!(case["reporter"]["name"], "王**");
    let id = case["id"].as_i64().unwrap();
    let v0 = case["version"].as_i64().unwrap();

    // --- error statuses ------------------------------------------------------------------
    let (s, v) = app.get(&format!("/api/v1/cases/{id}"), None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _) = app
        .get(&format!("/api/v1/cases/{id}"), Some("not-a-token"))
        .await;
    assert_eq!(s, 401);
    let (s, v) = app
        .post_raw(
            &format!("/api/v1/cases/{id}/actions"),
            Some(&dispatcher),
            "{not json".into(),
            &[],
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].is_string());
    let s = app.act(&dispatcher, id, json!({"action": "accept", "expected_version": v0, "handling_mode": "sideways", "difficulty": "simple"}), 422).await;
    assert_eq!(s["error"]["code"], "invalid_input");
    app.act(
        &dispatcher,
        id,
        json!({"action": "fly", "expected_version": v0}),
        422,
    )
    .await;
    app.act(&grid1, id, json!({"action": "accept", "expected_version": v0, "handling_mode": "immediate", "difficulty": "simple"}), 403).await;
    app.act(
        &dispatcher,
        id,
        json!({"action": "claim", "expected_version": v0}),
        403,
    )
    .await;
    app.act(
        &grid1,
        id,
        json!({"action": "claim", "expected_version": v0}),
        409,
    )
    .await;
    app.act(&dispatcher, id, json!({"action": "accept", "expected_version": v0 + 5, "handling_mode": "immediate", "difficulty": "simple"}), 409).await;
    let (s, _) = app.get("/api/v1/cases/99999999", Some(&dispatcher)).await;
    assert_eq!(s, 404);
    let (s, _) = app.get("/api/v1/cases/abc", Some(&dispatcher)).await;
    assert_eq!(s, 404);
    let huge = json!({"action": "comment", "text": "长".repeat(1_200_000)}).to_string();
    let s = common::raw_post_status(
        &app.url,
        &format!("/api/v1/cases/{id}/actions"),
        &dispatcher,
        huge.as_bytes(),
    );
    assert_eq!(s, 413);
    // Jurisdiction: a department that was not dispatched does not see the case.
    let (s, _) = app.get(&format!("/api/v1/cases/{id}"), Some(&dept1)).await;
    assert_eq!(s, 404);
    app.act(&dept1, id, json!({"action": "comment", "text": "?"}), 404)
        .await;

    // --- the loop ------------------------------------------------------------------------
    let c = app
        .act(
            &dispatcher,
            id,
            json!({"action": "accept", "expected_version": v0,
        "handling_mode": "immediate", "difficulty": "simple", "category": "public_facilities"}),
            200,
        )
        .await;
    assert_eq!(c["status"], "accepted");
    // simple = 1 working day, same clock time: Tue 10:00 → Wed 10:00 (+08:00).
    // (The server clock runs on from --now, hence the prefix.)
    assert!(
        c["deadline"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-25T02:0"),
        "{}",
        c["deadline"]
    );
    let c = app.act(&dispatcher, id, json!({"action": "dispatch", "expected_version": c["version"], "org": grid_code, "note": "请网格员核实处理"}), 200).await;
    assert_eq!(
        (c["status"].as_str(), c["org"].as_str()),
        (Some("dispatched"), Some(grid_code.as_str()))
    );
    let c = app
        .act(
            &grid1,
            id,
            json!({"action": "claim", "expected_version": c["version"]}),
            200,
        )
        .await;
    assert_eq!(c["status"], "in_progress");
    let c = app.act(&grid1, id, json!({"action": "request_extension", "expected_version": c["version"], "days": 2, "reason": "需要供电所配合"}), 200).await;
    let c = app.act(&dispatcher, id, json!({"action": "decide_extension", "expected_version": c["version"], "approved": true}), 200).await;
    assert!(
        c["deadline"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-27T02:0"),
        "extension moves the deadline by 2 working days: {}",
        c["deadline"]
    );
    let c = app.act(&grid1, id, json!({"action": "reply", "expected_version": c["version"], "result": "已联系物业更换灯泡"}), 200).await;
    assert_eq!(c["status"], "replied");
    let c = app.act(&dispatcher, id, json!({"action": "verify", "expected_version": c["version"], "passed": false, "note": "现场仍有一盏不亮"}), 200).await;
    assert_eq!(
        (c["status"].as_str(), c["rework_count"].as_i64()),
        (Some("in_progress"), Some(1))
    );
    let c = app.act(&grid1, id, json!({"action": "reply", "expected_version": c["version"], "result": "两盏灯均已修复"}), 200).await;
    let c = app
        .act(
            &dispatcher,
            id,
            json!({"action": "verify", "expected_version": c["version"], "passed": true}),
            200,
        )
        .await;
    assert_eq!(c["status"], "closed");
    assert_eq!(c["closed_on_time"], true);
    app.act(
        &grid1,
        id,
        json!({"action": "reply", "expected_version": c["version"], "result": "again"}),
        409,
    )
    .await;

    // The timeline: every step, oldest first, chained.
    let (_, detail) = app
        .get(&format!("/api/v1/cases/{id}"), Some(&dispatcher))
        .await;
    let actions: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create",
            "accept",
            "dispatch",
            "claim",
            "request_extension",
            "decide_extension",
            "reply",
            "verify",
            "reply",
            "verify"
        ]
    );
    let seqs: Vec<i64> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert_eq!(detail["events"][1]["actor"], "dispatcher");

    // --- the resident tracks and rates -------------------------------------------------
    let (s, _) = app
        .get(
            &format!("/api/v1/public/reports/{number}?phone_last4=0000"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, t) = app
        .get(
            &format!("/api/v1/public/reports/{number}?phone_last4=5678"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(t["status"], "closed");
    assert!(!t.to_string().contains("13812345678") && !t.to_string().contains("王小明"));
    assert!(
        !t.to_string().contains("dispatcher"),
        "no staff names in public view"
    );
    let (s, t) = app
        .post(
            &format!("/api/v1/public/reports/{number}/feedback"),
            None,
            json!({"phone_last4": "5678", "rating": "satisfied", "comment": "很快,谢谢"}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["rating"], "satisfied");
    let (s, _) = app
        .post(
            &format!("/api/v1/public/reports/{number}/feedback"),
            None,
            json!({"phone_last4": "5678", "rating": "satisfied"}),
        )
        .await;
    assert_eq!(s, 409, "rated once per closure");

    // --- personal data: masked everywhere, revealed explicitly and logged ----------------
    let (s, v) = app
        .post(
            &format!("/api/v1/cases/{id}/reveal"),
            Some(&inspector),
            json!({}),
        )
        .await;
    assert!(s == 403 || s == 404, "{s} {v}");
    let (s, v) = app
        .post(
            &format!("/api/v1/cases/{id}/reveal"),
            Some(&dispatcher),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["phone"], "13812345678");
    let (_, detail) = app
        .get(&format!("/api/v1/cases/{id}"), Some(&dispatcher))
        .await;
    let last = detail["events"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["action"].as_str(), last["actor"].as_str()),
        (Some("reveal"), Some("dispatcher"))
    );

    // --- idempotent create -----------------------------------------------------------------
    let body = json!({"channel": "hotline", "title": "噪音扰民", "description": "夜里装修", "org": grid_code,
                      "reporter": {"phone": "13900001111"}}).to_string();
    let key = [("Idempotency-Key", "call-2026-11-24-0001")];
    let (s1, a) = app
        .post_raw("/api/v1/cases", Some(&dispatcher), body.clone(), &key)
        .await;
    let (s2, b) = app
        .post_raw("/api/v1/cases", Some(&dispatcher), body.clone(), &key)
        .await;
    assert_eq!((s1, s2), (201, 201), "{a} {b}");
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["number"], b["number"]);
    let other = body.replace("噪音扰民", "噪音");
    let (s, v) = app
        .post_raw("/api/v1/cases", Some(&dispatcher), other, &key)
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app
        .post(
            "/api/v1/cases",
            Some(&dispatcher),
            json!({"channel": "hotline", "title": "x", "org": "no-such-org"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, _) = app
        .post(
            "/api/v1/cases",
            Some(&dispatcher),
            json!({"title": "no channel"}),
        )
        .await;
    assert_eq!(s, 422);

    // --- another street's dispatcher sees nothing of ours --------------------------------
    let d = data.to_str().unwrap();
    assert_eq!(
        run_cli(
            &[
                "org",
                "add",
                "--data",
                d,
                "--code",
                "330782004",
                "--name",
                "北苑街道",
                "--level",
                "street",
                "--parent",
                "330782"
            ],
            None
        )
        .0,
        0
    );
    let (code, out) = run_cli(
        &[
            "user",
            "add",
            "--data",
            d,
            "--username",
            "dispatcher_b",
            "--role",
            "dispatcher",
            "--org",
            "330782004",
        ],
        Some("secret-password\n"),
    );
    assert_eq!(code, 0, "{out}");
    let (s, v) = app
        .post(
            "/api/v1/login",
            None,
            json!({"username": "dispatcher_b", "password": "secret-password"}),
        )
        .await;
    assert_eq!(s, 200);
    let other_street = v["token"].as_str().unwrap();
    let (s, _) = app
        .get(&format!("/api/v1/cases/{id}"), Some(other_street))
        .await;
    assert_eq!(s, 404);
    let (_, list) = app.get("/api/v1/cases?limit=200", Some(other_street)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let (s, _) = app
        .get("/api/v1/stats?org=330782003", Some(other_street))
        .await;
    assert_eq!(s, 404);

    // --- stats ------------------------------------------------------------------------------
    let (s, st) = app
        .get(
            "/api/v1/stats?org=330782003&from=2025-11-24&to=2026-11-24",
            Some(&dispatcher),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert!(st["received"].as_i64().unwrap() >= 1000, "{st}");
    for k in [
        "closure_rate",
        "on_time_rate",
        "rework_rate",
        "satisfaction_rate",
    ] {
        let x = st[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    let children = st["by_child"].as_array().unwrap();
    assert!(children.len() >= 10);
    let sum: i64 = children
        .iter()
        .map(|c| c["received"].as_i64().unwrap())
        .sum();
    assert!(sum <= st["received"].as_i64().unwrap());
    let (s, _) = app
        .get(
            "/api/v1/stats?org=330782003&from=2026-13-01",
            Some(&dispatcher),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = app
        .get(
            "/api/v1/stats?org=330782003&from=2026-11-24&to=2026-11-01",
            Some(&dispatcher),
        )
        .await;
    assert_eq!(s, 422);

    // --- logout, and login throttling ------------------------------------------------------
    let (s, _) = app.post("/api/v1/logout", Some(&grid1), json!({})).await;
    assert!(s == 204 || s == 200);
    let (s, _) = app.get("/api/v1/me", Some(&grid1)).await;
    assert_eq!(s, 401);
    let mut statuses = vec![];
    for _ in 0..7 {
        statuses.push(
            app.post(
                "/api/v1/login",
                None,
                json!({"username": "leader", "password": "wrong"}),
            )
            .await
            .0,
        );
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert_eq!(statuses[6], 429);
}

#[tokio::test]
async fn durable_across_a_crash_and_tamper_evident() {
    let data = temp_dir("crash");
    let app = App::demo(&data, NOW);
    let grid1 = app.login("grid1").await;
    let (s, c) = app
        .post(
            "/api/v1/cases",
            Some(&grid1),
            json!({"channel": "grid_patrol", "title": "井盖破损", "description": "人行道井盖松动"}),
        )
        .await;
    assert_eq!(s, 201);
    let id = c["id"].as_i64().unwrap();
    // Killed without warning right after the acknowledgement.
    app.kill();
    let app = App::demo(&data, NOW);
    let grid1 = app.login("grid1").await;
    let (s, again) = app.get(&format!("/api/v1/cases/{id}"), Some(&grid1)).await;
    assert_eq!(s, 200);
    assert_eq!(again["title"], "井盖破损");
    app.kill();

    let d = data.to_str().unwrap();
    let (code, out) = run_cli(&["audit", "verify", "--data", d], None);
    assert_eq!(code, 0, "{out}");
    // Edit one stored event behind the server's back: the check names it.
    {
        let target = tamper_event(&data, 100);
        let (code, out) = run_cli(&["audit", "verify", "--data", d], None);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("event {target}")), "{out}");
    }
}

#[tokio::test]
async fn overdue_cases_are_supervised_and_escalated() {
    let data = temp_dir("sweep");
    let app = App::demo(&data, NOW);
    let dispatcher = app.login("dispatcher").await;
    let grid1 = app.login("grid1").await;
    let (_, me) = app.get("/api/v1/me", Some(&grid1)).await;
    let grid = me["org"].as_str().unwrap().to_string();
    let (s, c) = app
        .post(
            "/api/v1/cases",
            Some(&dispatcher),
            json!({"channel": "hotline", "title": "楼道堆物", "org": grid}),
        )
        .await;
    assert_eq!(s, 201);
    let id = c["id"].as_i64().unwrap();
    let c = app.act(&dispatcher, id, json!({"action": "accept", "expected_version": c["version"], "handling_mode": "immediate", "difficulty": "simple"}), 200).await;
    let c = app
        .act(
            &dispatcher,
            id,
            json!({"action": "dispatch", "expected_version": c["version"], "org": grid}),
            200,
        )
        .await;
    app.act(
        &grid1,
        id,
        json!({"action": "claim", "expected_version": c["version"]}),
        200,
    )
    .await;
    app.kill();

    // Three working days later (Fri 10:30): overdue since Wed 10:00, one working day at the
    // grid, escalated to the community on Thu, still there on Fri (ladder: 2 more days).
    let app = App::demo(&data, "2026-11-27T10:30:00+08:00");
    let dispatcher = app.login("dispatcher").await;
    let mut case = Value::Null;
    for _ in 0..50 {
        case = app
            .get(&format!("/api/v1/cases/{id}"), Some(&dispatcher))
            .await
            .1;
        if case["overdue"] == true && case["escalation_level"].as_i64() >= Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(case["overdue"], true, "{case}");
    let actions: Vec<&str> = case["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"supervise"), "{actions:?}");
    assert!(actions.contains(&"escalate"), "{actions:?}");
    let community = &grid[..grid.len() - 2];
    assert_eq!(case["org"], community, "escalated grid → community");
    let (_, list) = app
        .get("/api/v1/cases?overdue=true&limit=200", Some(&dispatcher))
        .await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id)
    );
}
