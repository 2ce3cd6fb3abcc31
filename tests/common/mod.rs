//! Starts the real `gridloop` binary on a random port with its own data folder.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_gridloop");
/// Tuesday 2026-11-24 10:00 in Yiwu.
pub const NOW: &str = "2026-11-24T10:00:00+08:00";

pub struct App {
    pub url: String,
    pub data: PathBuf,
    child: Child,
    pub client: reqwest::Client,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("gridloop-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The PostgreSQL server the suite runs against instead of SQLite, when set: an admin URL
/// such as `postgres://postgres@127.0.0.1:5433/postgres` (scripts/test.sh sets it).
pub fn pg_admin_url() -> Option<String> {
    std::env::var("GRIDLOOP_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The URL of a database on the test server, named `name`.
pub fn pg_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    format!("{root}/{name}{query}")
}

/// Runs SQL on a PostgreSQL database with psql and returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh database on the test server (dropped first if a former run left it).
pub fn fresh_pg_database(tag: &str) -> Option<String> {
    let admin = pg_admin_url()?;
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("gl_{}_{}_{n}", tag, std::process::id());
    psql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(&admin, &format!("CREATE DATABASE {name}"));
    Some(pg_url(&admin, &name))
}

/// The database URL that stands for a data folder when the suite runs on PostgreSQL: one
/// database per folder, created on first use, so that a restart on the same folder finds
/// its data again. `None` on SQLite.
pub fn database_url(data: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let admin = pg_admin_url()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    let name = format!("gl_{:016x}", h.finish());
    let exists = psql(
        &admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
    );
    if exists.is_empty() {
        psql(&admin, &format!("CREATE DATABASE {name}"));
    }
    Some(pg_url(&admin, &name))
}

/// Points a command at the store of `data`: `DATABASE_URL` on PostgreSQL, none on SQLite.
fn store_env(cmd: &mut Command, data: Option<&Path>) {
    match data.and_then(database_url) {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
}

/// The first value of a SQL query on the store of `data`, as text (SQLite or PostgreSQL).
pub fn db_value(data: &Path, sql: &str) -> String {
    match database_url(data) {
        Some(url) => psql(&url, sql),
        None => {
            let db = rusqlite::Connection::open(data.join("gridloop.db")).unwrap();
            db.query_row(sql, [], |r| {
                Ok(match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    other => format!("{other:?}"),
                })
            })
            .unwrap()
        }
    }
}

/// Edits the actor of the event at `offset` in chain order behind the server's back, as an
/// intruder with database access would (the append-only triggers disabled first), and
/// returns the event's id.
pub fn tamper_event(data: &Path, offset: i64) -> i64 {
    let pick = format!("SELECT id FROM events ORDER BY id LIMIT 1 OFFSET {offset}");
    match database_url(data) {
        Some(url) => {
            let id: i64 = psql(&url, &pick).parse().unwrap();
            psql(
                &url,
                &format!(
                    "ALTER TABLE events DISABLE TRIGGER USER;
                     UPDATE events SET actor = 'someone_else' WHERE id = {id};"
                ),
            );
            id
        }
        None => {
            let db = rusqlite::Connection::open(data.join("gridloop.db")).unwrap();
            let triggers: Vec<String> = db
                .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for t in triggers {
                db.execute(&format!("DROP TRIGGER {t}"), []).unwrap();
            }
            let id: i64 = db.query_row(&pick, [], |r| r.get(0)).unwrap();
            db.execute(
                "UPDATE events SET actor = 'someone_else' WHERE id = ?1",
                [id],
            )
            .unwrap();
            id
        }
    }
}

impl App {
    /// `gridloop demo` on a fresh (or the given) data folder, clock at `now`, on the store
    /// under test.
    pub fn demo(data: &Path, now: &str) -> App {
        Self::start("demo", data, now, database_url(data))
    }

    /// `gridloop demo` or `serve` on SQLite in `data`, or on PostgreSQL at `database_url`.
    pub fn start(command: &str, data: &Path, now: &str, database_url: Option<String>) -> App {
        let mut cmd = Command::new(BIN);
        match database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        let mut child = cmd
            .args([command, "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(["--now", now])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gridloop");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("gridloop exited before serving")
                .unwrap();
            if let Some(rest) = line.strip_prefix("gridloop is serving at ") {
                break rest.trim_end_matches('/').to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        App {
            url,
            data: data.to_path_buf(),
            child,
            client: reqwest::Client::new(),
        }
    }

    /// Kills the server at once (no graceful shutdown), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn login(&self, username: &str) -> String {
        let r = self
            .post(
                "/api/v1/login",
                None,
                json!({"username": username, "password": "demo"}),
            )
            .await;
        assert_eq!(r.0, 200, "login {username}: {}", r.1);
        r.1["token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.post_raw(path, token, body.to_string(), &[]).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: String,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Takes an action, checking the answer's status.
    pub async fn act(&self, token: &str, id: i64, body: Value, want: u16) -> Value {
        let (s, v) = self
            .post(
                &format!("/api/v1/cases/{id}/actions"),
                Some(token),
                body.clone(),
            )
            .await;
        assert_eq!(s, want, "action {body}: {v}");
        v
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with arguments and returns (exit code, stdout).
/// The store is the one of the `--data` folder given, on the backend under test.
pub fn run_cli(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let data = args
        .iter()
        .position(|a| *a == "--data")
        .and_then(|i| args.get(i + 1))
        .map(Path::new);
    let mut cmd = Command::new(BIN);
    store_env(&mut cmd, data);
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A point well inside a GeoJSON Polygon: the average of its outer ring's corners.
pub fn inside(boundary: &Value) -> (f64, f64) {
    let ring = if boundary["type"] == "MultiPolygon" {
        &boundary["coordinates"][0][0]
    } else {
        &boundary["coordinates"][0]
    };
    let pts = ring.as_array().unwrap();
    let n = (pts.len() - 1) as f64;
    let lng = pts[..pts.len() - 1]
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .sum::<f64>()
        / n;
    let lat = pts[..pts.len() - 1]
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .sum::<f64>()
        / n;
    (lat, lng)
}

/// Posts over a raw socket and returns the status: the server may answer 413 and close
/// before the whole body is sent, which HTTP client libraries report as a send error.
pub fn raw_post_status(url: &str, path: &str, token: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
