#!/usr/bin/env bash
# Usage: ./split.sh [--within SECONDS] N VERSION PERCENT TOLERANCE [curl options...]
# Sends N requests for bluegreen's /color through Traefik, counts the versions that answered,
# and exits 1 unless VERSION answered PERCENT % of them, give or take TOLERANCE points.
# --within SECONDS: measure again (N requests each time) until it holds or SECONDS have passed;
# Traefik applies a changed route a moment after `kubectl apply` (it batches changes, 2 s).
set -euo pipefail
within=0
if [ "${1:-}" = "--within" ]; then within=$2; shift 2; fi
if [ $# -lt 4 ]; then
  echo "usage: $0 [--within SECONDS] N VERSION PERCENT TOLERANCE [curl options...]" >&2
  exit 2
fi
n=$1 version=$2 percent=$3 tolerance=$4
shift 4
url="${TRAEFIK:-$(./traefik-url.sh)}"
low=$(( n * (percent - tolerance) )) high=$(( n * (percent + tolerance) ))
deadline=$(( SECONDS + within )) tries=0
while :; do
  tries=$(( tries + 1 ))
  answers=$(for _ in $(seq "$n"); do
    curl -s -H 'Host: bluegreen.localhost' "$@" "$url/color"
    echo
  done)
  got=$(grep -c "\"version\":\"$version\"" <<<"$answers" || true)
  share=$(( 100 * got ))
  if [ "$share" -ge "$low" ] && [ "$share" -le "$high" ]; then ok=1; else ok=0; fi
  if [ "$ok" = 1 ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
done
grep -o '"version":"[^"]*"' <<<"$answers" | cut -d'"' -f4 | sort | uniq -c
what="$version answered $got of $n ($((share / n))%), expected ${percent}% ± ${tolerance}"
[ "$tries" -gt 1 ] && what="$what (measurement $tries)"
if [ "$ok" = 1 ]; then
  echo "ok: $what"
else
  echo "off: $what" >&2
  exit 1
fi
