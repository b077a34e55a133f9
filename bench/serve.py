"""CPU serving benchmark: emailrouter's request path against a plain `transformers` pipeline, in one run on one machine.

For each model given (a demo-inbox model, and a BANKING77 model with --banking77-model):

1. the ONNX export gate (emailrouter.export.export_onnx): each variant's top-1 agreement and mean calibrated top-score
   difference against PyTorch on the texts it was gated on (validation), which variant it kept, and the same figures
   on held-out texts;
2. model only, on cleaned held-out texts: mails/s and single-mail p50/p99 for the pipeline (batches of 32), PyTorch and
   each ONNX variant, in batches of 32 in arrival order (padded to the longest of the 32) and in length-sorted
   batches cut by a token budget (what `EmailRouter` does);
3. HTTP: wrk with N connections for S seconds on raw mails cycled (HTML, quoted threads for the demo inbox), against
   `uvicorn emailrouter.serve:app` (gated backend, micro-batching, prediction log on, as in production) in a few
   configurations, and against a server that calls the pipeline once per request (bench/baseline_app.py).

    python bench/serve.py --model emailrouter-runs/train/<run>/model --banking77-model <banking77 run>/model
        # a BANKING77 model: python bench/banking77.py --out /tmp/b77 --max-length 64  (model in
        # /tmp/b77/runs/banking77/model)

wrk is needed for the HTTP part (`apt-get install wrk`): a Python load generator would take a good share of 2 cores.
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BANKING77 = HERE.parent.parent / "shared" / "data" / "banking77" / "train.csv"


def newest_model() -> Path | None:
    runs = sorted(Path("emailrouter-runs/train").glob("*/model/config.json"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent if runs else None


def cpu_description() -> str:
    "The CPU's model name and the vector extensions int8 and bf16 inference depend on (/proc/cpuinfo on Linux)."
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "cpu"
    name = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    found = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    flags = set(found.group(1).split()) if found else set()
    isa = [
        label
        for flag, label in (
            ("avx512f", "AVX-512"),
            ("avx512_vnni", "AVX-512 VNNI"),
            ("avx_vnni", "AVX-VNNI"),
            ("avx512_bf16", "AVX-512 BF16"),
            ("amx_bf16", "AMX"),
        )
        if flag in flags
    ]
    return (
        f"{name.group(1).strip() if name else 'cpu'}, "
        f"{', '.join(isa) if isa else 'AVX2' if 'avx2' in flags else 'no AVX2'}"
    )


def pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000, q))


def time_single(fn, texts, warm=3):
    "p50/p99 ms of one mail per call."
    for t in texts[:warm]:
        fn([t])
    lat = []
    for t in texts:
        t0 = time.perf_counter()
        fn([t])
        lat.append(time.perf_counter() - t0)
    return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}


def time_batch(fn, texts, batch):
    "Mails/s scoring `texts` in consecutive calls of `batch` (the best of two passes)."
    fn(texts[:batch])
    best = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch):
            fn(texts[i : i + batch])
        best = max(best, len(texts) / (time.perf_counter() - t0))
    return best


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk_load(url, bodies, clients, seconds):
    "Load with wrk (C, so the load generator takes little of the cores): a Lua script cycles through the bodies."
    lua = (
        ["local bodies = {"]
        + ["[==[" + json.dumps(b, ensure_ascii=False) + "]==]," for b in bodies]
        + [
            "}",
            "local i = 0",
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            "request = function() i = i % #bodies + 1; return wrk.format(nil, nil, nil, bodies[i]) end",
            'done = function(summary, latency, requests) io.write(string.format("RESULT %d %d %d %f %f\\n", '
            "summary.requests, "
            "summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + "
            "summary.errors.timeout, "
            "summary.duration, latency:percentile(50), latency:percentile(99))) end",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("\n".join(lua))
    out = subprocess.run(
        [shutil.which("wrk"), "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "30s", "-s", f.name, url],
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(f.name)
    n, err, dur_us, p50, p99 = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", out).groups()
    return {
        "requests": int(n),
        "errors": int(err),
        "throughput_rps": int(n) / (int(dur_us) / 1e6),
        "p50_ms": float(p50) / 1000,
        "p99_ms": float(p99) / 1000,
    }


def serve_and_load(args_cmd, env, bodies, clients, seconds, warm=64):
    """Start uvicorn with `args_cmd` and `env`, wait for /ready, warm it up, load it with wrk. EMAILROUTER_SRC in `env`
    runs it in that folder, so that Python imports the emailrouter package found there (an earlier version)."""
    env = dict(env)
    cwd = env.pop("EMAILROUTER_SRC", None)
    import httpx

    port = free_port()
    logfile = tempfile.TemporaryFile()  # the server's logs (access log at INFO, as in production); a pipe would fill up
    p = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *args_cmd, "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
        stdout=logfile,
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if p.poll() is not None:
                logfile.seek(0)
                raise RuntimeError(logfile.read().decode()[-500:])
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/predict"
        for b in bodies[:warm]:
            httpx.post(url, json=b, timeout=30)
        return wrk_load(url, bodies, clients, seconds)
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def graph_router(model, graph, folder):
    """A router on one ONNX graph of `model`'s export, whatever the gate kept: 'int8', 'fp32', or 'int8 fused' (ONNX
    Runtime's transformer optimiser fuses attention, LayerNorm and GELU first; not used by emailrouter, measured here
    to show why)."""
    from emailrouter.export import quantize_int8
    from emailrouter.model import FP32_FILE, ONNX_DIR, ONNX_FILE, EmailRouter, ort_session

    fp32 = model / ONNX_DIR / FP32_FILE
    path = model / ONNX_DIR / (ONNX_FILE if graph == "int8" else FP32_FILE)
    if graph == "int8 fused":
        from onnxruntime.transformers.optimizer import optimize_model
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(model)
        optimize_model(
            str(fp32), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size
        ).save_model_to_file(str(folder / "fused.onnx"))
        quantize_int8(folder / "fused.onnx", path := folder / "fused.int8.onnx")
    elif not path.exists():
        quantize_int8(fp32, path := folder / ONNX_FILE)
    r = EmailRouter(model, backend="torch")
    r.model, r.session = None, ort_session(path)
    r.input_names = [i.name for i in r.session.get_inputs()]
    return r


def bench_model(name, model, gate_texts, gate_labels, texts, bodies, args, http_configs):
    "Gate, model-only and HTTP figures for one model folder."
    import torch
    from transformers import pipeline

    from emailrouter.export import export_onnx
    from emailrouter.model import ONNX_DIR, PARITY_FILE, EmailRouter

    if args.reexport or not (model / ONNX_DIR / PARITY_FILE).exists():
        try:
            export_onnx(model, gate_texts, gate_labels)
        except Exception as e:
            print(f"{name}: export refused: {e}", flush=True)
    parity = json.loads((model / ONNX_DIR / PARITY_FILE).read_text())
    res = {"model": str(model), "gate": parity, "eval_texts": len(texts)}
    torch_r = EmailRouter(model, backend="torch")
    ref = torch_r.predict_proba(texts)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    routers = {"torch": torch_r}
    cpu = cpu_description()
    if "BF16" in cpu or "AMX" in cpu:  # without native bf16, PyTorch emulates it, many times slower
        routers["torch bf16"] = bf16 = EmailRouter(model, backend="torch")
        bf16.model = bf16.model.to(torch.bfloat16)
    routers.update(
        {
            "onnx int8": graph_router(model, "int8", work),
            "onnx int8 fused": graph_router(model, "int8 fused", work),
            "onnx fp32": graph_router(model, "fp32", work),
        }
    )
    if parity.get("variant") == "int8+fp32":
        routers["onnx int8+fp32"] = EmailRouter(model, backend="onnx")
    pipe = pipeline("text-classification", model=str(model), tokenizer=str(model), device=-1)
    pipe_fn = lambda ts: pipe(list(ts), batch_size=len(ts), truncation=True, max_length=torch_r.max_length)
    lens = [len(x) for x in torch_r.tokenizer(texts, truncation=True, max_length=torch_r.max_length)["input_ids"]]
    res["tokens"] = {"mean": float(np.mean(lens)), "p50": float(np.median(lens)), "max": int(max(lens))}
    micro = {"pipeline": {**time_single(pipe_fn, texts[: args.n]), "batches of 32": time_batch(pipe_fn, texts, 32)}}
    print(name, "pipeline", {k: round(v, 1) for k, v in micro["pipeline"].items()}, flush=True)
    for rname, r in routers.items():
        row = time_single(r.predict_proba, texts[: args.n])
        tokens = r.batch_tokens
        r.batch_tokens = 10**9  # batches of 32 in arrival order: padded to the longest of the 32
        row["batches of 32"] = time_batch(r.predict_proba, texts, 32)
        for b in args.budgets:  # every text in one call, cut by the router into sorted batches
            r.batch_tokens, r.batch_size = b, 256
            row[f"sorted, {b} tokens"] = time_batch(r.predict_proba, texts, len(texts))
        r.batch_tokens, r.batch_size = tokens, 64
        if rname != "torch":  # answers against PyTorch fp32 on the same texts
            p = r.predict_proba(texts)
            row["agreement"] = float((p.argmax(-1) == ref.argmax(-1)).mean())
            row["mean_score_diff"] = float(np.abs(p.max(-1) - ref.max(-1)).mean())
        micro[rname] = row
        print(
            name,
            rname,
            {k: round(v, 4 if k in ("agreement", "mean_score_diff") else 1) for k, v in row.items()},
            flush=True,
        )
    res["micro"] = micro
    kept = f"onnx {parity['variant']}" if "variant" in parity else "torch"
    res["kept"] = kept
    best = max(v for k, v in micro[kept].items() if k.startswith("sorted"))
    res["model_only_ratio"] = best / micro["pipeline"]["batches of 32"]
    shutil.rmtree(work, ignore_errors=True)
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk): HTTP part skipped", flush=True)
        return res
    runs = {}
    db = Path(tempfile.mkdtemp(prefix="serve-bench-log-")) / "log.db"
    configs = {
        cname: (
            ["emailrouter.serve:app", *cmd],
            {"EMAILROUTER_MODEL_URI": str(model.resolve()), "EMAILROUTER_LOG_URL": f"sqlite:///{db}", **env},
        )
        for cname, (cmd, env) in http_configs.items()
    }
    configs["pipeline per request"] = (["--app-dir", str(HERE), "baseline_app:app"], {"BASELINE_MODEL": str(model)})
    for _ in range(args.repeat):  # rounds, so that a slow minute of the machine hits every config
        for cname, (cmd, env) in configs.items():
            runs.setdefault(cname, []).append(serve_and_load(cmd, env, bodies, args.clients, args.seconds))
            print(name, cname, {k: round(v, 1) for k, v in runs[cname][-1].items()}, flush=True)
    shutil.rmtree(db.parent, ignore_errors=True)
    # each configuration's median run by throughput, with every run's figures kept
    http = {c: {**sorted(r, key=lambda x: x["throughput_rps"])[(len(r) - 1) // 2], "runs": r} for c, r in runs.items()}
    base = http["pipeline per request"]["throughput_rps"]
    for v in http.values():
        v["throughput_ratio"] = v["throughput_rps"] / base
    res["http"] = http
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model",
        help="demo-inbox model folder written by `emailrouter train` (default: the newest under emailrouter-runs/)",
    )
    ap.add_argument("--banking77-model", help="a BANKING77 model folder (bench/banking77.py writes one)")
    ap.add_argument("--banking77", default=str(BANKING77), help="BANKING77 train.csv")
    ap.add_argument("--n", type=int, default=64, help="mails per single-mail latency measurement")
    ap.add_argument(
        "--budgets",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[512, 1024, 2048, 4096],
        help="token budgets to try",
    )
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument(
        "--repeat", type=int, default=2, help="rounds of HTTP runs; each configuration reports its median run"
    )
    ap.add_argument("--reexport", action="store_true", help="export and gate again even if the folder has an export")
    ap.add_argument(
        "--before-src", help="also serve the emailrouter package in this folder (a worktree of an earlier commit)"
    )
    ap.add_argument("--out", default=str(HERE / "results" / "serve.json"))
    args = ap.parse_args(argv)
    model = Path(args.model) if args.model else newest_model()
    if model is None or not (model / "config.json").exists():
        sys.exit("serve bench: no model folder; run `emailrouter train --demo` first or pass --model")
    from emailrouter.core import load_settings
    from emailrouter.data import load_emails
    from emailrouter.tracking import package_versions

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.processor() or 'cpu'}",
        "clients": args.clients,
        "seconds": args.seconds,
        "versions": package_versions(),
    }
    result["cpu"] = cpu_description()
    default = ([], {})
    demo_http = {
        "emailrouter": default,
        "emailrouter, wait 2 ms": ([], {"EMAILROUTER_MICROBATCH_WAIT_MS": "2"}),
        "emailrouter, wait 25 ms": ([], {"EMAILROUTER_MICROBATCH_WAIT_MS": "25"}),
        "emailrouter, 1 inference thread": ([], {"EMAILROUTER_INFERENCE_THREADS": "1"}),
        "emailrouter, 2 workers x 1 thread": (["--workers", "2"], {"EMAILROUTER_INFERENCE_THREADS": "1"}),
        "emailrouter, asyncio + h11": (["--loop", "asyncio", "--http", "h11"], {}),
    }
    if args.before_src:
        demo_http["emailrouter before"] = (
            [],
            {"EMAILROUTER_SRC": args.before_src, "EMAILROUTER_SERVE_BACKEND": "onnx"},
        )
    demo = load_emails("demo:3000")
    raw = demo.frame("test")
    val = demo.splits["validation"]
    result["demo"] = bench_model(
        "demo",
        model,
        val["text"],
        val["label"],
        list(demo.splits["test"]["text"]),
        [{"subject": s, "body": b} for s, b in zip(raw.subject, raw.body)],
        args,
        demo_http,
    )
    if args.banking77_model:
        s = load_settings(
            text_column="text",
            label_column="category",
            subject_column="",
            timestamp_column="",
            id_column="",
            split="stratified",
            val_size=0.1,
            test_size=0.1,
            seed=42,
            min_examples_per_label=5,
        )
        b77 = load_emails(
            args.banking77, settings=s
        )  # the split bench/banking77.py trains on: validation gates, test is held out
        test = b77.frame("test")
        v = b77.splits["validation"]
        result["banking77"] = bench_model(
            "banking77",
            Path(args.banking77_model),
            v["text"],
            v["label"],
            list(test["text"]),
            [{"body": t} for t in test["text"]],
            args,
            {"emailrouter": default},
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for name in ("demo", "banking77"):
        if name not in result:
            continue
        r = result[name]
        print(f"{name}: kept {r['kept']}, model-only {r['model_only_ratio']:.1f}x the pipeline", end="")
        if "http" in r:
            h = r["http"]["emailrouter"]
            print(
                f"; HTTP {h['throughput_rps']:.0f} req/s ({h['throughput_ratio']:.1f}x the pipeline server), "
                f"p99 {h['p99_ms']:.0f} ms, {h['errors']} errors",
                end="",
            )
        print()


if __name__ == "__main__":
    main()
