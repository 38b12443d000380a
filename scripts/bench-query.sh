#!/usr/bin/env bash
# Query benchmark (BENCHMARKS.md): EVENTS events spread over the last 90
# days for one site, ingested through the real pipeline (native batches with
# timestamps: the documented bulk path), aggregated, closed and released;
# then the dashboard query set and an ad hoc query are timed, the server's
# RSS is read, and the dashboard's first paint is measured in chromium.
# Loopback only; stops by itself.
#
#   scripts/bench-query.sh [events] [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
ITER=${2:-200}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/veil" ./cmd/veil
V="$work/veil"; data="$work/data"; url=http://127.0.0.1:9095
$V serve --data "$data" --addr 127.0.0.1:9095 --close-grace 5s --log-level warn ${SERVE_FLAGS:-} >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs $url/readyz >/dev/null && break; sleep 0.2; done
# The first start prints a one-time admin token; the CLI acts through the API.
ADMIN=$(grep -om1 'veil_[A-Za-z0-9_-]\{43\}' "$work/serve.log")
export VEIL_URL=$url VEIL_TOKEN=$ADMIN
$V site add bench.example --retention 100d >/dev/null
INGEST=$($V token create --role ingest)
VIEWER=$($V token create --role viewer)
ANALYST=$($V token create --role analyst)
metric() { curl -s -H "Authorization: Bearer $ADMIN" $url/metrics | awk -v m="$1" '$1==m {print $2}'; }

t0=$(date +%s)
$V load --url $url --mode batch --site bench.example --token "$INGEST" -c 4 --days 90 --events "$EVENTS" --duration 3600s
t1=$(date +%s)
echo "ingested $EVENTS events in $((t1-t0)) s"
while :; do
  done_=$(python3 -c "print(int(float('$(metric veil_aggregate_events_total)' or 0) + float('$(metric 'veil_aggregate_dropped_total{reason="capped"}')' or 0) + float('$(metric 'veil_aggregate_dropped_total{reason="late"}')' or 0)))")
  [ "$done_" -ge "$EVENTS" ] && break
  sleep 5
done
t2=$(date +%s)
echo "aggregated in $((t2-t1)) s after ingest ended ($(( EVENTS / (t2-t0) )) events/s end to end); counted $(metric veil_aggregate_events_total), capped $(metric 'veil_aggregate_dropped_total{reason="capped"}'), late $(metric 'veil_aggregate_dropped_total{reason="late"}')"
while :; do
  days=$(metric 'veil_releases_total{period="day"}'); days=${days:-0}
  [ "${days%.*}" -ge 89 ] && break
  sleep 10
done
t3=$(date +%s)
echo "released $days days $((t3-t2)) s later (days close 5 s after their last event, releases run every 30 s)"
$V load --url $url --mode queries --token "$VIEWER" --site bench.example --iterations "$ITER"
$V load --url $url --mode adhoc --token "$ANALYST" --site bench.example --iterations 100
echo "server RSS: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status), peak $(awk '/VmHWM/ {print $2/1024 " MiB"}' /proc/$pid/status)"
if [ -x /usr/bin/chromium ]; then
  echo "dashboard first paint in chromium, 30-day view (sign-in page as the baseline):"
  scripts/bench-firstpaint.sh $url "$ADMIN" bench.example "${RUNS:-9}" 30d
fi
grep -E "level=(ERROR|WARN)" "$work/serve.log" | head -5 || true
