"""Does ONNX Runtime leave a core idle? One session with one thread per core against one single-threaded session per
core scoring parts of the same texts in parallel (cleaned demo test mails, the model's gated ONNX export).

    python bench/parallel_sessions.py --model emailrouter-runs/train/<run>/model
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

from emailrouter.data import load_emails
from emailrouter.model import EmailRouter


def rate(fn, n, rounds=2):
    "Best texts/s of `rounds` calls of `fn` over `n` texts."
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder with an ONNX export")
    args = ap.parse_args(argv)
    texts = list(load_emails("demo:3000").splits["test"]["text"]) * 2
    cores = os.cpu_count() or 1
    one = EmailRouter(args.model, backend="onnx", threads=cores)
    one.predict_proba(texts[:64])
    print(f"one session, {cores} threads: {rate(lambda: one.predict_proba(texts), len(texts)):.0f} mails/s")
    many = [EmailRouter(args.model, backend="onnx", threads=1) for _ in range(cores)]
    for r in many:
        r.predict_proba(texts[:32])
    parts = [texts[i::cores] for i in range(cores)]
    with ThreadPoolExecutor(cores) as pool:
        run = lambda: list(pool.map(lambda rp: rp[0].predict_proba(rp[1]), zip(many, parts)))
        print(f"{cores} sessions x 1 thread in parallel: {rate(run, len(texts)):.0f} mails/s")


if __name__ == "__main__":
    main()
