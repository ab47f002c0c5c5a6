#!/usr/bin/env bash
# Usage: ./split.sh N VERSION PERCENT TOLERANCE [curl options...]
# Sends N requests for bluegreen's /color through Traefik, counts the versions that answered,
# and exits 1 unless VERSION answered PERCENT % of them, give or take TOLERANCE points.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 N VERSION PERCENT TOLERANCE [curl options...]" >&2
  exit 2
fi
n=$1 version=$2 percent=$3 tolerance=$4
shift 4
url="${TRAEFIK:-$(./traefik-url.sh)}"
answers=$(for _ in $(seq "$n"); do
  curl -s -H 'Host: bluegreen.localhost' "$@" "$url/color"
  echo
done)
grep -o '"version":"[^"]*"' <<<"$answers" | cut -d'"' -f4 | sort | uniq -c
got=$(grep -c "\"version\":\"$version\"" <<<"$answers" || true)
low=$(( n * (percent - tolerance) )) high=$(( n * (percent + tolerance) ))
share=$(( 100 * got ))
if [ "$share" -ge "$low" ] && [ "$share" -le "$high" ]; then
  echo "ok: $version answered $got of $n ($((share / n))%), expected ${percent}% ± ${tolerance}"
else
  echo "off: $version answered $got of $n ($((share / n))%), expected ${percent}% ± ${tolerance}" >&2
  exit 1
fi
