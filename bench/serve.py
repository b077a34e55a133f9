"""CPU inference and HTTP serving benchmark: pipeline baseline vs emailrouter's PyTorch and ONNX int8 backends.

Everything runs in this one script on this machine, so the ratios compare like with like:

1. single-request latency (p50/p99) and batch throughput (e-mails/s) at realistic lengths (the demo corpus
   after cleaning) and at fixed 128/256/512 tokens, for (a) `transformers.pipeline("text-classification")`,
   (b) `EmailRouter(backend="torch")`, (c) `EmailRouter(backend="onnx")` (int8);
2. top-1 agreement of (a) and (c) with (b);
3. HTTP under load over loopback: N concurrent clients for S seconds against `uvicorn emailrouter.serve:app`
   (ONNX backend, micro-batching) and against a baseline server that calls the pipeline once per request:
   throughput, p50/p99 latency, errors. The load comes from wrk when it is installed (`apt-get install wrk`),
   else from an httpx client in this process, which itself takes a good share of a 2-core machine.

    python bench/serve.py --model emailrouter-runs/train/<run>/model   # a model folder written by `emailrouter train`
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def newest_model() -> Path | None:
    runs = sorted(Path("emailrouter-runs/train").glob("*/model/config.json"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


def texts_of_tokens(tokenizer, n_tokens: int, k: int) -> list[str]:
    "k Danish texts of exactly n_tokens tokens (without special tokens)."
    words = ("min regning er steget og jeg vil gerne vide hvorfor internettet ikke virker når jeg flytter til "
             "en ny adresse i august og tv boksen siger intet signal").split()
    out = []
    for i in range(k):
        ws = [words[(i + j) % len(words)] for j in range(n_tokens * 2)]
        ids = tokenizer(" ".join(ws), add_special_tokens=False)["input_ids"][:n_tokens - 2]
        out.append(tokenizer.decode(ids))
    return out


def pct(xs, q): return float(np.percentile(np.asarray(xs) * 1000, q))


def time_single(fn, texts, warm=3):
    for t in texts[:warm]: fn([t])
    lat = []
    for t in texts:
        t0 = time.perf_counter(); fn([t]); lat.append(time.perf_counter() - t0)
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}


def time_batch(fn, texts, batch=32):
    fn(texts[:batch])
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch): fn(texts[i:i + batch])
    return {"emails_per_s": len(texts) / (time.perf_counter() - t0)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


async def load(url, bodies, clients, seconds):
    import httpx
    lat, errors, done = [], 0, 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as c:
        async def worker(i):
            nonlocal errors, done
            j = i
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await c.post(url, json=bodies[j % len(bodies)])
                    ok = r.status_code == 200
                except Exception:
                    ok = False
                lat.append(time.perf_counter() - t0); done += 1; errors += not ok; j += clients
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(i) for i in range(clients)])
        wall = time.perf_counter() - t0
    return {"requests": done, "errors": errors, "throughput_rps": done / wall, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}


def wrk_load(url, bodies, clients, seconds):
    "Load with wrk (C, so the load generator takes little of the 2 cores): a Lua script cycles through the bodies."
    import re
    import shutil
    import tempfile
    lua = ["local bodies = {"] + ["[==[" + json.dumps(b, ensure_ascii=False) + "]==]," for b in bodies] + ["}", "local i = 0",
           'wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"',
           "request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end",
           'done = function(summary, latency, requests) io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests, '
           "summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, "
           'summary.duration, latency:percentile(50), latency:percentile(99))) end']
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f: f.write("\n".join(lua))
    out = subprocess.run([shutil.which("wrk"), "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "30s", "-s", f.name, url],
                         capture_output=True, text=True).stdout
    n, err, dur_us, p50, p99 = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", out).groups()
    return {"requests": int(n), "errors": int(err), "throughput_rps": int(n) / (int(dur_us) / 1e6),
            "p50_ms": float(p50) / 1000, "p99_ms": float(p99) / 1000, "load_generator": "wrk"}


def serve_and_load(args_cmd, env, bodies, clients, seconds):
    import tempfile
    port = free_port()
    logfile = tempfile.TemporaryFile()  # the server's logs (access log at INFO, as in production); a pipe would fill up
    p = subprocess.Popen([sys.executable, "-m", "uvicorn", *args_cmd, "--port", str(port), "--log-level", "warning"],
                         env={**os.environ, **env}, stdout=logfile, stderr=subprocess.STDOUT)
    import httpx
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200: break
            except httpx.HTTPError: pass
            if p.poll() is not None:
                logfile.seek(0); raise RuntimeError(logfile.read().decode()[-500:])
            time.sleep(0.5)
        import shutil
        url = f"http://127.0.0.1:{port}/predict"
        if shutil.which("wrk"): return wrk_load(url, bodies, clients, seconds)
        return {**asyncio.run(load(url, bodies, clients, seconds)), "load_generator": "httpx (install wrk for a lighter one)"}
    finally:
        p.terminate()
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired: p.kill(); p.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder written by `emailrouter train` (default: the newest under emailrouter-runs/)")
    ap.add_argument("--n", type=int, default=64, help="texts per latency measurement")
    ap.add_argument("--clients", type=int, default=32); ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--out", default=str(HERE / "results" / "serve.json"))
    args = ap.parse_args(argv)
    model = Path(args.model) if args.model else newest_model()
    if model is None or not (model / "config.json").exists():
        sys.exit("serve bench: no model folder; run `emailrouter train --demo` first or pass --model")
    from transformers import AutoTokenizer, pipeline
    from emailrouter.data import load_emails
    from emailrouter.model import EmailRouter, export_onnx, ONNX_DIR, ONNX_FILE
    torch_r = EmailRouter(model, backend="torch")
    demo = load_emails("demo:3000")
    demo_texts = demo.splits["test"]["text"]
    if not (model / ONNX_DIR / ONNX_FILE).exists():
        export_onnx(model, demo.splits["validation"]["text"], demo.splits["validation"]["label"])
    onnx_r = EmailRouter(model, backend="onnx")
    tok = torch_r.tokenizer
    pipe = pipeline("text-classification", model=str(model), tokenizer=str(model), device=-1)
    trained_len = torch_r.max_length
    sets = {"demo (cleaned)": (list(demo_texts[:args.n * 4]), trained_len)}
    for n in (128, 256, 512): sets[f"{n} tokens"] = (texts_of_tokens(tok, n, args.n * 2), n)
    result = {"machine": f"{os.cpu_count()} cpus", "model": str(model), "max_length": trained_len, "micro": {}}
    for name, (texts, max_len) in sets.items():
        for r in (torch_r, onnx_r): r.max_length = max_len   # fixed lengths are scored whole, not cut to the training budget
        fns = {"pipeline": lambda ts: pipe(list(ts), batch_size=len(ts), truncation=True, max_length=max_len),
               "torch": torch_r.predict_proba, "onnx_int8": onnx_r.predict_proba}
        row = {}
        for b, fn in fns.items():
            row[b] = {**time_single(fn, texts[:args.n]), **time_batch(fn, texts)}
            print(name, b, {k: round(v, 1) for k, v in row[b].items()}, flush=True)
        result["micro"][name] = row
    for r in (torch_r, onnx_r): r.max_length = trained_len
    t_pred = torch_r.predict_proba(list(demo_texts)).argmax(-1)
    o_pred = onnx_r.predict_proba(list(demo_texts)).argmax(-1)
    p_pred = [torch_r.labels.index(x["label"]) for x in pipe(list(demo_texts), batch_size=32, truncation=True, max_length=trained_len)]
    result["top1_agreement_with_torch"] = {"onnx_int8": float((o_pred == t_pred).mean()), "pipeline": float((np.array(p_pred) == t_pred).mean()),
                                           "n": len(t_pred)}
    print("top-1 agreement", result["top1_agreement_with_torch"], flush=True)
    raw = demo.frame("test")
    bodies = [{"subject": s, "body": b} for s, b in zip(raw.subject, raw.body)]
    result["http"] = {
        "emailrouter (onnx, micro-batching)": serve_and_load(["emailrouter.serve:app"], {"EMAILROUTER_MODEL_URI": str(model),
                                                             "EMAILROUTER_SERVE_BACKEND": "onnx"}, bodies, args.clients, args.seconds),
        "pipeline per request": serve_and_load(["--app-dir", str(HERE), "baseline_app:app"], {"BASELINE_MODEL": str(model)},
                                               bodies, args.clients, args.seconds)}
    for k, v in result["http"].items(): print(k, {a: round(b, 1) if isinstance(b, float) else b for a, b in v.items()}, flush=True)
    ours, base = result["http"].values()
    result["http_throughput_ratio"] = ours["throughput_rps"] / base["throughput_rps"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"HTTP throughput ratio emailrouter / pipeline baseline: {result['http_throughput_ratio']:.2f}")


if __name__ == "__main__":
    main()
