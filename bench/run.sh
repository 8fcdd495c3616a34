#!/usr/bin/env bash
# Load benchmarks of carecircle (and, when given, of a peer server on the same data).
#
#   [TOKEN=…] bench/run.sh BASE_URL DATA.ndjson [SECONDS]
#
# With TOKEN set, every request carries it as a bearer token (carecircle needs one; mint it with
# `carecircle token …`).
# Runs wrk (apt package wrk) on loopback against BASE_URL with random real paths drawn from
# DATA.ndjson: read by id at 64 connections (flat out, then paced to about 4,000 requests/s), then search by identifier and by family + birth
# date at 1 and at 64 connections. The server must already hold DATA.ndjson.
set -euo pipefail
base=${1:?base URL, e.g. http://127.0.0.1:8080}
data=${2:?NDJSON file the server holds}
seconds=${3:-15}
here=$(cd "$(dirname "$0")" && pwd)
paths=$(mktemp -d)
python3 "$here/paths.py" "$data" "$paths" >/dev/null
run() { # name connections
    echo "== $1, $2 connections"
    threads=$(( $2 < 2 ? 1 : 2 ))
    PATHS="$paths/$1.txt" wrk -t"$threads" -c"$2" -d"${seconds}s" -s "$here/random-paths.lua" "$base" | grep -E "Requests/sec|latency p50|non-2xx"
}
run read 64
echo "== read, 64 connections paced to about 4,000 requests/s"
PATHS="$paths/read.txt" DELAY_MS=15 wrk -t2 -c64 -d"${seconds}s" -s "$here/random-paths.lua" "$base" | grep -E "Requests/sec|latency p50|non-2xx"
run identifier 1
run identifier 64
run family-birthdate 1
run family-birthdate 64
rm -rf "$paths"
