#!/usr/bin/env python3
"""Benchmark apps/rabbitmq-worker against a private RabbitMQ node on 127.0.0.1.

Figures:
  send      wall time of `rabbitmq-worker send URL 300` (process start to exit, every message
            persistent and confirmed), median of --repeat runs, plus the in-process time
  consume   one consumer with --work-seconds 0 over --messages messages: messages/s and ms per
            message (first to last `done` line) = the consumer's own overhead per message;
            the same with --work-seconds 0.01 shows that overhead on top of simulated work
  memory    the consumer's peak RSS (VmHWM)

Needs: rabbitmq-server (python3 scripts/rabbitmq_service.py install) and the app installed in
this Python (pip install -e apps/rabbitmq-worker). Usage:
  python benchmarks/rabbitmq_worker.py [--messages 2000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _service() -> Any:
    spec = importlib.util.spec_from_file_location(
        "kubelab_rabbitmq_service", REPO_ROOT / "scripts" / "rabbitmq_service.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rabbitmq_worker", *args]


def send(url: str, queue: str, count: int, run_id: str) -> tuple[float, float]:
    """(wall seconds, in-process seconds) of one confirmed send."""
    started = time.perf_counter()
    result = subprocess.run(
        _cli("send", url, str(count), "--queue", queue, "--run-id", run_id),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"error: send failed: {result.stderr.strip()}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["confirmed"] != count:
        raise SystemExit(f"error: only {summary['confirmed']} of {count} confirmed")
    return wall, float(summary["seconds"])


def _done_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "done":
            out.append(event)
    return out


def _peak_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def consume(url: str, queue: str, count: int, work_seconds: float, log_dir: Path) -> dict:
    send(url, queue, count, f"c{work_seconds}")
    log_path = log_dir / f"consume-{queue}.jsonl"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            _cli("receive", url, "--queue", queue, "--work-seconds", str(work_seconds)),
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 600
        while len(_done_lines(log_path)) < count:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: consumer stopped early; see {log_path}")
            time.sleep(0.1)
        rss = _peak_rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    done = _done_lines(log_path)
    first = dt.datetime.fromisoformat(done[0]["ts"])
    last = dt.datetime.fromisoformat(done[-1]["ts"])
    span = (last - first).total_seconds()
    per_msg = span / (len(done) - 1)
    return {
        "messages": len(done),
        "work_seconds": work_seconds,
        "msgs_per_s": round(1 / per_msg, 1),
        "ms_per_msg": round(per_msg * 1000, 3),
        "overhead_ms_per_msg": round((per_msg - work_seconds) * 1000, 3),
        "peak_rss_mib": round(rss / 1024, 1) if rss else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="for the work=0 run")
    parser.add_argument("--send-count", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    service = _service()
    try:
        broker = service.PrivateBroker()
    except service.BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rabbitmq-bench-") as tmp:
        try:
            started = time.perf_counter()
            broker.start()
            results["broker_start_s"] = round(time.perf_counter() - started, 2)
            runs = [
                send(broker.url, f"bench-send-{i}", args.send_count, f"s{i}")
                for i in range(args.repeat)
            ]
            results["send"] = {
                "messages": args.send_count,
                "runs": args.repeat,
                "wall_s_median": round(statistics.median(r[0] for r in runs), 3),
                "in_process_s_median": round(statistics.median(r[1] for r in runs), 3),
                "ms_per_confirmed_msg": round(
                    statistics.median(r[1] for r in runs) / args.send_count * 1000, 3
                ),
            }
            results["consume_work0"] = consume(
                broker.url, "bench-consume-0", args.messages, 0.0, Path(tmp)
            )
            results["consume_work10ms"] = consume(
                broker.url, "bench-consume-10ms", min(args.messages, 500), 0.01, Path(tmp)
            )
        except service.BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            broker.close()
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
