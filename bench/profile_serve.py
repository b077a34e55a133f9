"""Where the server's time goes under load: py-spy samples every thread of `uvicorn emailrouter.serve:app` while wrk
sends raw demo mails from 32 connections (without pausing the server: --nonblocking), and the samples are summarised per
thread and, for the event loop, per part of the request path.

    python bench/profile_serve.py --model emailrouter-runs/train/<run>/model --label after
    git worktree add /tmp/before <commit> && python bench/profile_serve.py --model ... --label before --src /tmp/before
        # the same, serving an earlier version of the package
    python bench/profile_serve.py --raw old.raw --label before      # summarise samples recorded earlier (py-spy -f raw)

Results are merged into bench/results/serve-profile.json under the label. Needs py-spy (pip) and wrk (apt-get).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve import cpu_description, free_port, wrk_load  # noqa: E402

# parts of the event loop's work: a sample counts for the innermost function on its stack that matches one of these
PARTS = [
    ("cleaning and PII masking (clean_email)", r"^clean_email \("),
    ("Starlette BaseHTTPMiddleware", r"^BaseHTTPMiddleware\."),
    ("emailrouter middleware (request id, body guard, metrics)", r"^(RequestMiddleware\.|track_request|guard_body)"),
    ("access log line", r"^Logger\._log"),
    ("ranking and answers", r"^(EmailRouter\.rank|Prediction\.|route_emails)"),
    ("handing rows to the prediction log", r"^Recorder\.record"),
    (
        "request parsing and validation (FastAPI, pydantic)",
        r"^(request_body_to_args|_validate_value|solve_dependencies|Request\.json)",
    ),
    ("response serialisation", r"^(serialize_response|_prepare_response_content|jsonable_encoder|JSONResponse\.)"),
    ("HTTP protocol (uvicorn)", r"^(H11Protocol|HttpToolsProtocol|RequestResponseCycle)\."),
]
# a thread is idle when its innermost Python frame is one of these (uvloop waits in C under Runner.run /
# run_until_complete)
IDLE = re.compile(
    r"^(EpollSelector\.select|select |Condition\.wait|_worker \(|wait \(|Event\.wait|_wait_for_tstate_lock|epoll|"
    r"Runner\.run \(|run \(asyncio/runners|run_until_complete|run_forever)"
)


def summarise(raw: Path, seconds: float, requests: int | None = None) -> dict:
    "Per thread: share of wall time busy (not waiting) and what it did; the event loop broken into PARTS."
    threads, busy, parts, top = Counter(), Counter(), Counter(), {}
    for line in raw.read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        frames, n = stack.split(";"), int(n)
        name = re.sub(r"^thread \(\d+\): ", "", frames[0])
        name = re.sub(
            r"(AnyIO worker thread|asyncio_\d+|ThreadPoolExecutor-\d+_\d+|emailrouter-model_\d+).*",
            lambda m: re.sub(r"_\d+$", "", m.group(1)),
            name,
        )
        threads[name] += n
        leaf = frames[-1]
        if IDLE.match(leaf):
            continue
        busy[name] += n
        top.setdefault(name, Counter())[leaf.split(" (")[0]] += n
        if name == "MainThread":
            fn = [f.split(" (")[0] + " (" for f in reversed(frames[1:])]
            part = next(
                (label for f in fn for label, pat in PARTS if re.match(pat, f)), "other (asyncio, Starlette routing)"
            )
            parts[part] += n
    out = {"seconds": seconds, "requests": requests, "threads": {}}
    for name, total in threads.most_common():
        share = busy[name] / total
        if share < 0.01:
            continue
        out["threads"][name] = {"busy_share": share, "top": {k: v / total for k, v in top[name].most_common(5)}}
    main = threads["MainThread"]
    out["event_loop"] = {k: v / main for k, v in parts.most_common()}
    if requests:
        out["event_loop_ms_per_request"] = {k: 1000 * seconds * v / requests for k, v in out["event_loop"].items()}
    return out


def pyspy() -> str:
    "py-spy: on the PATH or beside this Python (a virtual environment's bin)."
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not found:
        sys.exit("profile_serve: py-spy is not installed (pip install py-spy)")
    return found


def record(model: str, seconds: float, src: str | None = None) -> tuple[Path, dict]:
    "Run the server under wrk load and py-spy; (raw samples file, wrk figures)."
    import httpx

    from emailrouter.data import load_emails

    raw_mails = load_emails("demo:3000").frame("test")
    bodies = [{"subject": s, "body": b} for s, b in zip(raw_mails.subject, raw_mails.body)]
    port, tmp = free_port(), Path(tempfile.mkdtemp(prefix="serve-profile-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "emailrouter.serve:app", "--port", str(port), "--log-level", "warning"],
        env={
            **os.environ,
            "EMAILROUTER_MODEL_URI": model,
            "EMAILROUTER_LOG_URL": f"sqlite:///{tmp / 'log.db'}",
            **({"EMAILROUTER_SERVE_BACKEND": "onnx"} if src else {}),
        },  # earlier versions defaulted to torch
        stdout=open(tmp / "server.log", "w"),
        stderr=subprocess.STDOUT,
        cwd=src,
    )
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/predict"
        wrk_load(url, bodies, 32, 3)  # warm-up
        spy = subprocess.Popen(
            [
                pyspy(),
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(int(seconds)),
                "-r",
                "100",
                "--threads",
                "--idle",
                "--nonblocking",
                "-f",
                "raw",
                "-o",
                str(tmp / "samples.raw"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        load = wrk_load(url, bodies, 32, seconds)
        spy.wait(timeout=seconds + 60)
        return tmp / "samples.raw", load
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder to serve")
    ap.add_argument("--raw", help="summarise this py-spy raw file instead of recording")
    ap.add_argument("--label", required=True, help="name of this profile in the results file, e.g. before, after")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--requests", type=int, help="with --raw: requests answered while it was recorded")
    ap.add_argument(
        "--src",
        help="serve the emailrouter package in this folder, run from there (e.g. a worktree of an earlier commit)",
    )
    ap.add_argument("--out", default=str(HERE / "results" / "serve-profile.json"))
    args = ap.parse_args(argv)
    if args.raw:
        raw, load = Path(args.raw), {"requests": args.requests}
    elif args.model:
        raw, load = record(str(Path(args.model).resolve()), args.seconds, args.src)
    else:
        sys.exit("profile_serve: give --model or --raw")
    res = {
        **summarise(raw, args.seconds, load.get("requests")),
        "load": load,
        "cpu": cpu_description(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.out)
    allres = json.loads(out.read_text()) if out.exists() else {}
    allres[args.label] = res
    out.write_text(json.dumps(allres, indent=2))
    print(json.dumps({k: res[k] for k in ("load", "event_loop")}, indent=1))
    for name, t in res["threads"].items():
        print(f"{name}: busy {t['busy_share']:.0%}", {k: round(v, 3) for k, v in t["top"].items()})


if __name__ == "__main__":
    main()
