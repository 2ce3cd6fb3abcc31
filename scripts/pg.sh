#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, entirely inside one directory.
#
#   scripts/pg.sh start DIR   installs Debian's postgresql if no initdb is found, creates a
#                             cluster in DIR, starts it on a free loopback port and prints
#                             its URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   scripts/pg.sh stop DIR    stops that server and removes DIR
#
# No system service is used or started; nothing is written outside DIR (besides the
# package install). Trust authentication on loopback only: for tests, never for data.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# The directory holding initdb and pg_ctl: PATH first, then Debian's versioned folders
# (newest version first), which are not on PATH by default.
find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Runs a command as the cluster's owner: initdb and postgres refuse to run as root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local bin
    if ! bin=$(find_bin); then
        echo "pg.sh: no initdb found; installing Debian's postgresql" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        # The package's own service is not wanted: a policy-rc.d that refuses every start
        # keeps it from starting during the install (removed again afterwards).
        local policy=/usr/sbin/policy-rc.d made_policy=
        if [ "$(id -u)" -eq 0 ] && [ ! -e $policy ]; then
            printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made_policy=1
        fi
        apt-get install -y -qq postgresql >&2 || { [ -n "$made_policy" ] && rm -f $policy; exit 1; }
        if [ -n "$made_policy" ]; then rm -f $policy; fi
        bin=$(find_bin) || { echo "pg.sh: initdb still not found" >&2; exit 1; }
    fi
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    if [ -e "$dir/data/PG_VERSION" ]; then
        echo "pg.sh: $dir already holds a cluster; stop it first" >&2
        exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            echo "pg.sh: the postgres user cannot reach $dir; choose a DIR whose parents it may enter (e.g. under /tmp)" >&2
            exit 1
        fi
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }

    local port tries=0
    while :; do
        port=$(free_port)
        # unix_socket_directories inside DIR: no /var/run/postgresql needed.
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
                -c max_connections=200 -c shared_buffers=128MB -c fsync=on \
                -c synchronous_commit=on -c log_min_messages=warning" \
            start >"$dir/pg_ctl.log" 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then
            cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null || true
            exit 1
        fi
    done
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
}

stop() {
    if [ -e "$dir/data/PG_VERSION" ]; then
        local bin
        bin=$(find_bin) || { echo "pg.sh: pg_ctl not found" >&2; exit 1; }
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
