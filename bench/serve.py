"""`digitkit serve` under load: 100 concurrent `POST /api/predict` requests of the example digits against one
server process with the shipped model, as a browser's would come (every request its own connection), then the same
requests one at a time; latencies (p50, p95, max) and requests/s, and errors (none expected).

    DIGITKIT_DATA=../shared/datasets python bench/serve.py [--requests 100] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "digitkit", "serve", "--port", str(port)], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/models", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def ask(url: str, body: bytes, want: str) -> tuple[float, bool]:
    request = urllib.request.Request(url + "/api/predict", data=body, headers={"content-type": "image/png"})
    start = time.perf_counter()
    try:
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
        ok = answer.get("label") == want
    except OSError:
        ok = False
    return time.perf_counter() - start, ok


def summary(name: str, times: list[float], oks: list[bool], wall: float) -> None:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * len(ordered))) - 1)]
    print(f"{name:<24} {len(times):>4} requests  p50 {1000 * statistics.median(ordered):7.1f} ms  p95 {1000 * p95:7.1f} ms  "
          f"max {1000 * ordered[-1]:7.1f} ms  {len(times) / wall:6.1f} req/s  errors {oks.count(False)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    examples = [(str(d), (ROOT / "docs" / "examples" / f"digit-{d}.png").read_bytes()) for d in range(10)]
    jobs = [examples[i % 10] for i in range(args.requests)]
    proc, url = start_server()
    try:
        ask(url, jobs[0][1], jobs[0][0])  # warm up: the first request pays for lazy imports
        print(f"{os.cpu_count()} cores; one `digitkit serve` process, the shipped MNIST model")
        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda job: ask(url, job[1], job[0]), jobs))
        summary(f"{args.concurrency} at once", [t for t, _ in results], [ok for _, ok in results], time.perf_counter() - start)
        start = time.perf_counter()
        results = [ask(url, body, want) for want, body in jobs]
        summary("one at a time", [t for t, _ in results], [ok for _, ok in results], time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
