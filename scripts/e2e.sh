#!/usr/bin/env bash
# End-to-end tests of the web UI in a real browser (Debian's chromium, driven by
# playwright-core; node's test runner). Installs what it needs, builds gridloop, serves a demo
# city on a free port with a fixed clock, runs e2e/tests, stops the server.
#
#   ./scripts/e2e.sh                        # debug build (shared with cargo test)
#   GL_E2E_RELEASE=1 ./scripts/e2e.sh       # release build
#   GL_SCREENSHOTS=docs/screenshots ./scripts/e2e.sh   # also save screenshots there
#   GL_BIN=path/to/gridloop ./scripts/e2e.sh     # test that binary, build nothing
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -x /usr/bin/chromium ]; then
  echo "== e2e: installing chromium"
  apt_install chromium
fi
# Chinese text in screenshots (the app itself loads no web fonts)
if ! fc-list 2>/dev/null | grep -qi 'cjk'; then
  echo "== e2e: installing fonts-noto-cjk"
  apt_install fonts-noto-cjk
fi
if ! command -v npm >/dev/null; then
  echo "== e2e: installing nodejs and npm"
  apt_install nodejs npm
fi

echo "== e2e: npm ci"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)

if [ -n "${GL_BIN:-}" ]; then
  bin="$GL_BIN" # a gridloop binary built already
elif [ -n "${GL_E2E_RELEASE:-}" ]; then
  cargo build --release --bin gridloop
  bin="$root/target/release/gridloop"
else
  cargo build --bin gridloop
  bin="$root/target/debug/gridloop"
fi

port=$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
data=$(mktemp -d)
log="$data/server.log"
"$bin" demo --data "$data/city" --listen "127.0.0.1:$port" --now 2026-11-24T02:00:00Z >"$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  if node -e "fetch('$base/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "gridloop demo exited:"; cat "$log"; exit 1
  fi
  sleep 0.2
done

echo "== e2e: testing $base"
shots="${GL_SCREENSHOTS:-}"
case "$shots" in ""|/*) ;; *) shots="$root/$shots" ;; esac
status=0
(
  cd e2e
  GL_BASE_URL="$base" GL_BIN="$bin" GL_DATA="$data/city" \
    GL_SCREENSHOTS="$shots" \
    node --test --test-concurrency=1 tests/
) || status=$?
if [ "$status" != 0 ]; then
  echo "== e2e failed; the server's log:"; tail -n 50 "$log"
fi
exit "$status"
