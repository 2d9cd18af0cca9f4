#!/usr/bin/env bash
# Renders a report.html in headless Chromium (Debian's `chromium` package) to a PNG, so that
# a person (or the file tool) can look at what the report shows.
# Usage: benchmarks/screenshot_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
set -euo pipefail
report=$(realpath "$1"); out=$2; width=${3:-1200}; height=${4:-3000}
command -v chromium >/dev/null || { echo "screenshot_report.sh: install Debian's chromium first" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$width,$height" \
  --screenshot="$(realpath -m "$out")" "file://$report" 2>/dev/null
echo "screenshot: $out"
