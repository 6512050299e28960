#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, makes sure
# PostgreSQL is up (the store and API suites run against it as well as SQLite, and fail rather
# than skip without it), then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

export AEDNET_TEST_PG_URL="${AEDNET_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; trying to start the local cluster" >&2
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# NATS with JetStream: the cluster crate's tests and the multi-node test (aednet/tests/cluster.rs)
# run against it and fail rather than skip without it. Started here if installed but not running.
export AEDNET_TEST_NATS_URL="${AEDNET_TEST_NATS_URL:-nats://127.0.0.1:4222}"
if [ "$AEDNET_TEST_NATS_URL" = "nats://127.0.0.1:4222" ] && ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  if command -v nats-server >/dev/null; then
    echo "NATS is not answering on 127.0.0.1:4222; starting nats-server -js" >&2
    nats_dir="$(mktemp -d)"
    nats-server -a 127.0.0.1 -p 4222 -js -sd "$nats_dir" >"$nats_dir/log" 2>&1 &
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.2; done
  else
    echo "warning: no NATS on 127.0.0.1:4222 and no nats-server: the cluster tests will fail" >&2
  fi
fi

# ../shared/data holds the real OSM extract the import tests read; say so plainly if absent.
if [ ! -f ../shared/data/liechtenstein.osm.pbf ]; then
  echo "warning: ../shared/data/liechtenstein.osm.pbf not found; the OSM import tests will fail" >&2
fi

cargo test --workspace --locked "$@"

# Browser tests (only for the full run): Debian's chromium and the Noto CJK fonts (so Chinese
# screenshots are readable), installed here if missing, driven by playwright-core against the
# real binary the tests above just built. One demo server for all four consoles.
if [ "$#" -eq 0 ]; then
  missing=""
  command -v chromium >/dev/null || missing="chromium"
  if command -v dpkg >/dev/null && ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then missing="$missing fonts-noto-cjk"; fi
  if [ -n "$missing" ]; then
    echo "installing$missing for the browser tests" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    # shellcheck disable=SC2086
    $SUDO apt-get install -y $missing >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y $missing >&2; }
  fi
  if ! command -v node >/dev/null; then
    echo "node not found: install Node.js 18 or newer (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
  npm ci --prefix web/e2e --no-audit --no-fund
  AEDNET_BIN="${CARGO_TARGET_DIR:-target}/debug/aednet" CHROMIUM="$(command -v chromium)" node web/e2e/run.mjs
  # The street basemap of every console over a real import (skipped without ../shared/data).
  AEDNET_BIN="${CARGO_TARGET_DIR:-target}/debug/aednet" CHROMIUM="$(command -v chromium)" node web/e2e/basemap.mjs
  AEDNET_BIN="${CARGO_TARGET_DIR:-target}/debug/aednet" CHROMIUM="$(command -v chromium)" node web/e2e/responder.mjs
fi
