#!/usr/bin/env bash
# Ingest benchmark (BENCHMARKS.md): Plausible-style single events against a
# bare net/http 202 handler, and native batches, with the load generator on
# the same machine. Everything runs on loopback and stops by itself.
#
#   scripts/bench-ingest.sh [runs] [seconds] [sync]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SECS=${2:-10}
SYNC=${3:-interval}
C=${C:-64}
BATCH_C=${BATCH_C:-8}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/veil" ./cmd/veil
V="$work/veil"
data="$work/data"

$V baseline --addr 127.0.0.1:9090 2>/dev/null &
$V serve --data "$data" --addr 127.0.0.1:9091 --trusted-proxy 127.0.0.1/32 --sync "$SYNC" --log-level warn >"$work/serve.log" 2>&1 &
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:9091/readyz >/dev/null && break; sleep 0.2; done
# The first start prints a one-time admin token; the CLI acts through the API.
export VEIL_URL=http://127.0.0.1:9091 VEIL_TOKEN=$(grep -om1 'veil_[A-Za-z0-9_-]\{43\}' "$work/serve.log")
$V site add bench.example >/dev/null
TOKEN=$($V token create --role ingest)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

base=(); ev=(); bat=()
for i in $(seq 1 "$RUNS"); do
  # Alternate baseline and Veil so drift on a noisy machine hits both alike.
  b=$($V load --url http://127.0.0.1:9090 --mode event --site bench.example -c "$C" --duration "${SECS}s" --spoof-ips | field requests_per_second)
  e=$($V load --url http://127.0.0.1:9091 --mode event --site bench.example -c "$C" --duration "${SECS}s" --spoof-ips)
  er=$(echo "$e" | field requests_per_second); [ "$(echo "$e" | field errors)" = 0 ] || echo "event errors: $e" >&2
  k=$($V load --url http://127.0.0.1:9091 --mode batch --site bench.example --token "$TOKEN" -c "$BATCH_C" --batch 1000 --duration "${SECS}s")
  kr=$(echo "$k" | field events_per_second); [ "$(echo "$k" | field errors)" = 0 ] || echo "batch errors: $k" >&2
  printf 'run %d: baseline %.0f req/s, /api/event %.0f req/s (%.1f%%), batch %.0f events/s\n' "$i" "$b" "$er" "$(python3 -c "print(100*$er/$b)")" "$kr"
  base+=("$b"); ev+=("$er"); bat+=("$kr")
done
mb=$(printf '%s\n' "${base[@]}" | median)
me=$(printf '%s\n' "${ev[@]}" | median)
mk=$(printf '%s\n' "${bat[@]}" | median)
printf '\nmedian of %d runs (%ss each, sync=%s, c=%d):\n' "$RUNS" "$SECS" "$SYNC" "$C"
printf '  bare net/http 202:   %.0f req/s\n' "$mb"
printf '  POST /api/event:     %.0f req/s  = %.1f%% of baseline\n' "$me" "$(python3 -c "print(100*$me/$mb)")"
printf '  POST /api/v1/events: %.0f events/s acknowledged (batches of 1000, c=%d)\n' "$mk" "$BATCH_C"
