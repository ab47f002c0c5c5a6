#!/usr/bin/env bash
# How the consumers drained the publisher's messages, from the logs of the publisher Job and of
# the consumer Pods still running: run it after the queue is empty and before KEDA scales the
# consumers back to zero (a deleted Pod's log is gone).
#   - every message keda-1 ... keda-300 must have been processed at least once (exit 1 if not);
#   - more deliveries than messages means some were delivered again (at-least-once);
#   - the drain time runs from the publisher's last confirmed message to the last message done.
set -euo pipefail
run_id=keda   # the publisher's --run-id (publisher.yaml)

sent=$(kubectl logs job/rabbitmq-publish | grep '"event":"sent"' | tail -n 1)
done=$(kubectl logs -l app.kubernetes.io/name=rabbitmq-consumer --tail=-1 \
  --max-log-requests=50 --ignore-errors | grep '"event":"done"' || true)
max=$(kubectl get scaledobject rabbitmq-consumer -o jsonpath='{.spec.maxReplicaCount}')

printf '%s\n%s\n' "$sent" "$done" | awk -v run="$run_id" -v max="$max" '
  function str(line, key,   m) {
    if (!match(line, "\"" key "\":\"[^\"]*\"")) return ""
    m = substr(line, RSTART + length(key) + 4, RLENGTH - length(key) - 5)
    return m
  }
  function num(line, key) {
    if (!match(line, "\"" key "\":[0-9]+")) return 0
    return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
  }
  # seconds since 0000-03-01 of a UTC time stamp 2026-11-27T22:40:01.123456+00:00
  function seconds(ts,   y, m, d, a) {
    y = substr(ts, 1, 4) + 0; m = substr(ts, 6, 2) + 0; d = substr(ts, 9, 2) + 0
    a = (m <= 2); y -= a; m += 12 * a - 3
    d += 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * m + 2) / 5)
    return d * 86400 + substr(ts, 12, 2) * 3600 + substr(ts, 15, 2) * 60 + substr(ts, 18, 9)
  }
  /"event":"sent"/ { start = seconds(str($0, "ts")); count = num($0, "count")
                     confirmed = num($0, "confirmed"); next }
  /"event":"done"/ {
    deliveries++
    if (index($0, "\"redelivered\":true")) redelivered++
    pods[str($0, "host")] = 1
    body = str($0, "body")
    if (body ~ ("^" run "-[0-9]+$")) {
      n = substr(body, length(run) + 2) + 0
      if (n >= 1 && n <= count && !(n in seen)) { seen[n] = 1; processed++ }
    }
    t = seconds(str($0, "ts")); if (t > last) last = t
  }
  END {
    for (p in pods) npods++
    printf "published %d messages, %d confirmed by the broker\n", count, confirmed
    printf "processed %d of %d messages (%d deliveries, %d redelivered) in %d consumer Pods\n",
      processed, count, deliveries, redelivered, npods
    if (processed > 0)
      printf "drain time %.1f s (last message published -> last message done)\n", last - start
    if (max > 0)
      printf "ideal with %d replicas: %d messages x 1 s / %d = %.0f s, plus the scale-out\n",
        max, count, max, count / max
    exit (count > 0 && processed == count) ? 0 : 1
  }'
