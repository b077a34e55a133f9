"""Liveness under hostile mail: how long /health and /ready take to answer while the API is fed mail that is expensive
to clean, against an earlier version of the server in the same run.

Load, for --seconds per server (Python clients on loopback; the same mix for every server):
- 2 clients posting the HTML mail `"<p>" * 15000` (45 KB of empty paragraphs) plus a line of text, one after another;
- 1 client posting batches of 64 plain-text mails of 63 KB each (about 4 MB a request);
- 2 clients posting ordinary demo mails;
- a prober asking GET /health and GET /ready every 50 ms, each timed.

    python bench/hostile.py [--model FOLDER] [--before-src DIR] [--out bench/results/hostile.json]

--model defaults to the newest `make demo` model; --before-src is a checkout of an earlier version (e.g. `git worktree
add /tmp/before <commit>`), served from that folder so that Python imports its emailrouter package. Kubernetes'
liveness probe in deploy/k8s gives /health 3 s; the aim is 100 ms.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve import cpu_description, free_port, newest_model  # noqa: E402  (bench/serve.py)

HTML_MAIL = {"subject": "Regning", "body": "<p>" * 15_000 + "Min regning er for høj denne måned."}
DEMO_MAILS = [
    {"subject": "Regning", "body": "Hej, min regning er steget uden varsel. Kan I forklare hvorfor?"},
    {"subject": "Internet nede", "body": "Min router blinker rødt og internettet virker ikke siden i går."},
    {"subject": "Flytning", "body": "Jeg flytter 1. maj og vil gerne tage mit bredbånd med til den nye adresse."},
]
BIG = (
    ("Jeg har et spørgsmål til min regning og mit abonnement, som jeg ikke forstår. " * 900)
    .encode()[:63_000]
    .decode(errors="ignore")
)  # 63 KB of UTF-8: under EMAILROUTER_MAX_BODY_BYTES (64,000 bytes)
BATCH = {"emails": [{"subject": "Lang klage", "body": BIG}] * 64}


async def client(c: httpx.AsyncClient, path: str, bodies: list, stop: float, log: list):
    i = 0
    while time.perf_counter() < stop:
        t = time.perf_counter()
        try:
            status = (await c.post(path, json=bodies[i % len(bodies)], timeout=120)).status_code
        except httpx.HTTPError as e:
            status = type(e).__name__
        log.append((status, time.perf_counter() - t))
        i += 1


async def prober(c: httpx.AsyncClient, stop: float, lat: dict):
    while time.perf_counter() < stop:
        for path in ("/health", "/ready"):
            t = time.perf_counter()
            try:
                ok = (await c.get(path, timeout=30)).status_code == 200
            except httpx.HTTPError:
                ok = False
            lat[path].append((time.perf_counter() - t) if ok else float("inf"))
        await asyncio.sleep(0.05)


async def load(url: str, seconds: float) -> dict:
    stop = time.perf_counter() + seconds
    logs = {"html_15000_p": [], "batch_64x63KB": [], "demo": []}
    lat = {"/health": [], "/ready": []}
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=url, limits=limits) as c:
        tasks = [client(c, "/predict", [HTML_MAIL], stop, logs["html_15000_p"]) for _ in range(2)]
        tasks += [client(c, "/predict/batch", [BATCH], stop, logs["batch_64x63KB"])]
        tasks += [client(c, "/predict", DEMO_MAILS, stop, logs["demo"]) for _ in range(2)]
        await asyncio.gather(prober(c, stop, lat), *tasks)
    out = {}
    for path, xs in lat.items():
        ms = np.asarray(xs) * 1000
        out[path] = {
            "probes": len(ms),
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
            "over_100ms": int((ms > 100).sum()),
        }
    for kind, xs in logs.items():
        statuses = {}
        for s, _ in xs:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
        out[kind] = {
            "requests": len(xs),
            "statuses": statuses,
            "p50_s": float(np.percentile([d for _, d in xs], 50)) if xs else None,
        }
    return out


def serve(model: str, src: str | None, seconds: float) -> dict:
    port = free_port()
    env = {**os.environ, "EMAILROUTER_MODEL_URI": model, "EMAILROUTER_LOG_URL": "", "EMAILROUTER_LOG_LEVEL": "WARNING"}
    logfile = tempfile.TemporaryFile()
    p = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=src or None,
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if p.poll() is not None:
                logfile.seek(0)
                raise RuntimeError(logfile.read().decode()[-800:])
            time.sleep(0.5)
        return asyncio.run(load(url, seconds))
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder (default: the newest `make demo` model)")
    ap.add_argument("--before-src", help="checkout of an earlier version to run against in the same script")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", default=str(HERE / "results" / "hostile.json"))
    a = ap.parse_args(argv)
    model = a.model or newest_model()
    if model is None:
        sys.exit("no model: run `make demo` first or pass --model")
    results = {"cpu": cpu_description(), "cores": os.cpu_count(), "seconds": a.seconds, "model": Path(model).name}
    servers = {"emailrouter": None, **({"emailrouter before": a.before_src} if a.before_src else {})}
    for name, src in servers.items():
        results[name] = serve(str(Path(model).resolve()), src, a.seconds)
        for path in ("/health", "/ready"):
            h = results[name][path]
            print(
                f"{name:20s} {path:8s} p50 {h['p50_ms']:8.1f} ms  p99 {h['p99_ms']:8.1f} ms  max {h['max_ms']:8.1f} "
                "ms  "
                f"over 100 ms: {h['over_100ms']}/{h['probes']}",
                flush=True,
            )
        for kind in ("html_15000_p", "batch_64x63KB", "demo"):
            print(f"{'':20s} {kind:14s} {results[name][kind]}", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {a.out} ({results['cpu']})")


if __name__ == "__main__":
    main()
