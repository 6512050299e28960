#!/usr/bin/env bash
# How long `aednet demo` takes to be ready, first start (generating and loading the city) and
# second start (the same database): until the address is announced, /readyz answers, and the
# coverage map (the slowest part: H3 grid, population grid, AED reach) answers its first query.
# Usage: scripts/demo-startup.sh [path/to/aednet]   (default target/release/aednet)
set -euo pipefail
bin="$(realpath "${1:-target/release/aednet}")"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.2f'; }
run() {
  local label=$1 t0 base pid
  t0=$(now)
  (cd "$dir" && exec env -u AEDNET_DATABASE_URL "$bin" demo --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >"$dir/out.txt" 2>/dev/null) &
  pid=$!
  until base=$(grep -o 'listening on http://[0-9.:]*' "$dir/out.txt" 2>/dev/null | cut -d' ' -f3) && [ -n "$base" ]; do sleep 0.02; done
  local listening; listening=$(since "$t0")
  until curl -sf "$base/readyz" -o /dev/null; do sleep 0.02; done
  local ready; ready=$(since "$t0")
  until curl -sf "$base/api/v1/districts/summary" -o /dev/null; do sleep 0.05; done
  echo "$label: listening $listening s, /readyz $ready s, coverage answered $(since "$t0") s"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}
run "first start "
run "second start"
