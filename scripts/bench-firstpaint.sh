#!/usr/bin/env bash
# Dashboard first paint (BENCHMARKS.md): loads a site's dashboard RUNS times
# in Debian's chromium (playwright-core) against a running Veil and prints
# the medians of first-contentful-paint and "ready" (all released panels
# rendered), with the sign-in page's first paint as the same-run baseline.
# Run it against a server holding the data to measure (for example the one
# scripts/bench-query.sh fills with 10 million events).
#
#   scripts/bench-firstpaint.sh URL TOKEN SITE [RUNS] [RANGE]
set -euo pipefail
cd "$(dirname "$0")/../e2e"
if [ $# -lt 3 ]; then
  echo "usage: $0 URL TOKEN SITE [RUNS] [RANGE]" >&2
  exit 2
fi
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund >/dev/null
VEIL_URL="$1" VEIL_TOKEN="$2" VEIL_SITE="$3" node bench-firstpaint.js "${4:-10}" "${5:-30d}"
