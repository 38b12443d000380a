#!/usr/bin/env bash
# Browser tests of the dashboard: builds veil, starts `veil serve --demo` on
# a free localhost port with a fresh data directory, and runs the tests in
# tests/ with node's test runner, driving Debian's chromium through
# playwright-core. Screenshots land in e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
if [ ! -d e2e/node_modules/playwright-core ]; then
  (cd e2e && npm ci --no-audit --no-fund)
fi

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/veil" ./cmd/veil
"$tmp/veil" serve --addr 127.0.0.1:0 --data "$tmp/data" --demo --log-level warn >"$tmp/serve.log" 2>&1 &
pid=$!

# The first start prints the URL and a one-time admin token.
url= token=
for _ in $(seq 1 150); do
  url=$(grep -om1 'listening on http://[0-9.:]*' "$tmp/serve.log" | sed 's/listening on //' || true)
  token=$(grep -om1 'veil_[A-Za-z0-9_-]\{43\}' "$tmp/serve.log" || true)
  [ -n "$url" ] && [ -n "$token" ] && curl -sf "$url/readyz" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log"; echo "veil serve exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$url" ] && [ -n "$token" ] || { cat "$tmp/serve.log"; echo "veil serve did not become ready" >&2; exit 1; }
echo "veil serving $url"

cd e2e
status=0
VEIL_URL="$url" VEIL_TOKEN="$token" VEIL_SITE=demo.veil.local \
  node --test --test-concurrency=1 --test-timeout=600000 tests/ || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- veil serve log"; tail -50 "$tmp/serve.log"
fi
exit "$status"
