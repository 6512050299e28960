#!/usr/bin/env bash
# The side-by-side load test: the same synthetic AEDs in aednet, PostgreSQL + PostGIS and Redis,
# the same filtered nearest-AED query against each, a table at the end.
#   scripts/load-compare.sh                 # 10^6 AEDs, 10 s per phase
#   scripts/load-compare.sh --aeds 100000   # any `load-tests compare` option
# Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379; installs PostGIS if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
    echo "installing PostGIS (postgresql-15-postgis-3)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y postgresql-15-postgis-3 >&2
fi
cargo build --release --locked -p aednet-load-tests
exec target/release/load-tests compare "$@"
