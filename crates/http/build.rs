//! Builds the web front end (`web/`, Vite) into `web/dist`, which `src/web.rs` embeds.
//!
//! Runs `npm ci` when `web/node_modules` is missing or older than `package-lock.json`, then
//! `npm run build` — only when a web source is newer than the last build, so that `cargo
//! clippy`/`cargo test` stay fast when nothing changed. A lock directory keeps two cargo
//! processes from building at once. `GRIDLOOP_SKIP_WEB=1` skips npm and embeds a placeholder
//! page if nothing was built (for machines without Node.js that do not need the UI).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const SOURCES: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.js",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("..").join("..").join("web");
    for s in SOURCES {
        println!("cargo:rerun-if-changed={}", web.join(s).display());
    }
    println!("cargo:rerun-if-env-changed=GRIDLOOP_SKIP_WEB");
    let dist = web.join("dist");
    let stamp = dist.join(".build-stamp");

    if up_to_date(&web, &stamp) {
        return;
    }
    if std::env::var_os("GRIDLOOP_SKIP_WEB").is_some_and(|v| !v.is_empty() && v != "0") {
        placeholder(&dist);
        return;
    }
    let _lock = Lock::acquire(&web.join(".build-lock"));
    // another cargo may have built it while we waited for the lock
    if up_to_date(&web, &stamp) {
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        if dist.join("index.html").exists() {
            println!(
                "cargo:warning=npm was not found: embedding the existing web/dist, which may be out of date"
            );
            return;
        }
        panic!(
            "\n\ngridloop's web console is built with Node.js and npm, and `npm` was not found.\n\
             Install Node.js 20+ with npm (Debian/Ubuntu: `apt-get install nodejs npm`) and build again,\n\
             or set GRIDLOOP_SKIP_WEB=1 to build without the web console.\n\n"
        );
    }
    let lock_file = web.join("package-lock.json");
    let installed = web.join("node_modules").join(".package-lock.json");
    if !installed.exists() || mtime(&lock_file) > mtime(&installed) {
        run(
            Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&web),
            "npm ci",
        );
    }
    run(
        Command::new(npm).args(["run", "build"]).current_dir(&web),
        "npm run build",
    );
    if !dist.join("index.html").exists() {
        panic!("`npm run build` made no web/dist/index.html");
    }
    fs::write(&stamp, b"built by crates/http/build.rs\n").expect("write web/dist/.build-stamp");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    if !out.status.success() {
        panic!(
            "`{what}` in web/ failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The newest modification time under a path (files and directories, recursively).
fn newest(p: &Path) -> SystemTime {
    let mut t = mtime(p);
    if let Ok(entries) = fs::read_dir(p) {
        for e in entries.flatten() {
            t = t.max(newest(&e.path()));
        }
    }
    t
}

fn up_to_date(web: &Path, stamp: &Path) -> bool {
    if !stamp.exists() || !web.join("dist").join("index.html").exists() {
        return false;
    }
    let built = mtime(stamp);
    SOURCES.iter().all(|s| newest(&web.join(s)) <= built)
}

/// A page that says the console was not built, so that the crate compiles without Node.js.
fn placeholder(dist: &Path) {
    if dist.join("index.html").exists() {
        return;
    }
    fs::create_dir_all(dist).expect("create web/dist");
    fs::write(
        dist.join("index.html"),
        "<!doctype html><meta charset=utf-8><title>gridloop</title>\
         <p>The web console was not built (GRIDLOOP_SKIP_WEB). The API is at /api/v1/.</p>\n",
    )
    .expect("write web/dist/index.html");
}

/// A lock file between concurrent build scripts (two cargo commands at once). It holds the
/// owner's pid; a lock whose owner is gone (or older than 15 minutes) is taken over.
struct Lock(PathBuf);

impl Lock {
    fn acquire(path: &Path) -> Lock {
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Lock(path.to_path_buf());
                }
                Err(_) => {
                    let owner = fs::read_to_string(path).unwrap_or_default();
                    let owner_gone = cfg!(target_os = "linux")
                        && !owner.trim().is_empty()
                        && !Path::new("/proc").join(owner.trim()).exists();
                    let age = SystemTime::now()
                        .duration_since(mtime(path))
                        .unwrap_or_default();
                    if owner_gone || age > Duration::from_secs(15 * 60) {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
