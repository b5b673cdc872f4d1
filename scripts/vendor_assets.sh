#!/usr/bin/env bash
# Front-end assets from the npm registry (pinned in package-lock.json), copied where Django
# serves static files from (var/vendor). Nothing is fetched from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
out=var/vendor/vendor
if [ ! -f "$out/.stamp" ] || [ package-lock.json -nt "$out/.stamp" ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  mkdir -p "$out"
  cp node_modules/htmx.org/dist/htmx.min.js "$out/htmx.min.js"
  cp node_modules/chart.js/dist/chart.umd.min.js "$out/chart.umd.min.js"
  touch "$out/.stamp"
fi
