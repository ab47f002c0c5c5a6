#!/usr/bin/env python3
"""How KEDA's consumers drained the publisher's burst, from the Pods' own logs.

    ./drain_report.py

Run it once the queue is empty and before KEDA scales the consumers back to zero: the log of a
deleted Pod is gone. It reads the publisher Job's last "sent" line and every "done" line of the
consumer Pods still running, and reports:
  - how many of the messages keda-1 ... keda-N were processed (exit 1 unless all of them were);
  - deliveries beyond the messages (at-least-once: a message may be delivered again);
  - the drain time, from the publisher's last confirmed message to the last message done, next
    to the ideal for the ScaledObject's maxReplicaCount (N messages x 1 s / replicas).
Standard library only (plus kubectl on PATH).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

RUN_ID = "keda"  # the publisher's --run-id (publisher.yaml)


def kubectl(*args: str) -> str:
    got = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=120)
    if got.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {got.stderr.strip()}")
    return got.stdout


def events(text: str, kind: str) -> list[dict]:
    """The JSON log lines of one event kind (other lines are skipped)."""
    found = []
    for line in text.splitlines():
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == kind:
            found.append(record)
    return found


def main() -> int:
    sent = events(kubectl("logs", "job/rabbitmq-publish"), "sent")
    if not sent:
        print("the publisher has not reported its messages yet (kubectl logs job/rabbitmq-publish)")
        return 1
    burst = sent[-1]
    count, start = int(burst["count"]), datetime.fromisoformat(burst["ts"])
    done = events(
        kubectl("logs", "-l", "app.kubernetes.io/name=rabbitmq-consumer", "--tail=-1",
                "--max-log-requests=50", "--ignore-errors"),
        "done",
    )  # fmt: skip
    prefix = f"{RUN_ID}-"
    processed = {
        int(b.removeprefix(prefix))
        for b in (str(d.get("body", "")) for d in done)
        if b.startswith(prefix) and b.removeprefix(prefix).isdigit()
        and 1 <= int(b.removeprefix(prefix)) <= count
    }  # fmt: skip
    redelivered = sum(1 for d in done if d.get("redelivered") is True)
    pods = {d.get("host") for d in done}
    print(f"published {count} messages, {burst.get('confirmed', 0)} confirmed by the broker")
    print(f"processed {len(processed)} of {count} messages ({len(done)} deliveries, "
          f"{redelivered} redelivered) in {len(pods)} consumer Pods")  # fmt: skip
    if processed:
        last = max(datetime.fromisoformat(d["ts"]) for d in done if "ts" in d)
        drain = (last - start).total_seconds()
        print(f"drain time {drain:.1f} s (last message published -> last message done)")
    top = kubectl("get", "scaledobject", "rabbitmq-consumer", "-o",
                  "jsonpath={.spec.maxReplicaCount}").strip()  # fmt: skip
    if top.isdigit() and int(top) > 0:
        ideal = count / int(top)
        print(f"ideal with {top} replicas: {count} messages x 1 s / {top} = {ideal:.0f} s, "
              "plus the scale-out")  # fmt: skip
    return 0 if count > 0 and len(processed) == count else 1


if __name__ == "__main__":
    sys.exit(main())
