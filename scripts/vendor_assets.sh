#!/usr/bin/env bash
# Front-end assets from the npm registry (pinned in package-lock.json), copied where Django
# serves static files from (var/vendor). Nothing is fetched from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
out=var/vendor/vendor
# Chart.js names its source map; with DEBUG off the manifest static storage refuses a file
# that references a missing one (and then every page is a 500), so the map is copied too.
if [ ! -f "$out/.stamp" ] || [ ! -f "$out/chart.umd.min.js.map" ] \
   || [ package-lock.json -nt "$out/.stamp" ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  mkdir -p "$out"
  cp node_modules/htmx.org/dist/htmx.min.js "$out/htmx.min.js"
  cp node_modules/chart.js/dist/chart.umd.min.js "$out/chart.umd.min.js"
  cp node_modules/chart.js/dist/chart.umd.min.js.map "$out/chart.umd.min.js.map"
  touch "$out/.stamp"
fi
