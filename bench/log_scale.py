"""Production scoring on a large prediction log: the database's path (`emailrouter.log_queries`) against reading the
log into pandas (`read_log` + `emailrouter.monitor`), in one process, on the same log.

Fills a prediction log with N realistic answers over a year (the demo inbox's cleaned mails as text, two model
versions, agents' feedback on 40% of them, one in eight corrections a different queue), then times and measures the
peak Python memory (tracemalloc) of:

- `emailrouter monitor`'s work: period scores by day and model version, the estimated accuracy of the last day, the
  drift windows (in memory: the whole log; in the database: samples of 20,000 a side) and the drift checks;
- the dashboard's production page: period scores, per-queue table, confusion, estimate and latency percentiles, for
  the whole log, the last 30 days and one queue.

Results go to stdout and bench/results/log_scale.json (with the CPU it ran on).

    python bench/log_scale.py --url postgresql+psycopg://postgres@127.0.0.1:5432/erbench --n 1000000
    python bench/log_scale.py --url sqlite:///emailrouter-runs/bench-log.db --n 1000000
    python bench/log_scale.py --url ... --n 10000000 --no-memory-path   # too large to read into pandas
"""

import argparse
import json
import platform
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from emailrouter.core import cpu_features
from emailrouter.demo import make_demo_corpus
from emailrouter.predlog import FeedbackRow, PredictionRow, log_engine, migrate
from emailrouter.text import clean_email

HERE = Path(__file__).resolve().parent
START = datetime(2026, 1, 1)


def fill(engine, n: int, seed: int = 0, batch: int = 50_000) -> float:
    "Replace the log behind `engine` by `n` answers over 365 days with feedback on 40%; returns seconds taken."
    with engine.begin() as c:
        for t in ("er_shadow", "er_feedback", "er_predictions", "er_queue_sets", "alembic_version"):
            c.execute(sa.text(f"drop table if exists {t}"))
    migrate(engine)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    corpus = make_demo_corpus(3000, seed=seed).dropna(subset=["body"])
    texts = [clean_email(s, b) for s, b in zip(corpus["subject"], corpus["body"])]
    queues = corpus["queue"].to_numpy()
    names = np.array(sorted(set(queues)))
    P, F = PredictionRow.__table__, FeedbackRow.__table__
    for b0 in range(0, n, batch):
        i = np.arange(b0, min(n, b0 + batch))
        k = i % len(texts)
        score = rng.uniform(0.35, 1.0, len(i))
        pred = np.where(rng.random(len(i)) < score, queues[k], names[rng.integers(0, len(names), len(i))])
        at = [START + timedelta(seconds=int(j * 365 * 86400 / n)) for j in i]
        rows = [
            {
                "request_id": f"b{j}",
                "created_at": t,
                "model_name": "emailrouter",
                "model_version": "1" if j < n // 2 else "2",
                "queue": q,
                "score": float(s),
                "route": q if s > 0.6 else "manuel_behandling",
                "top_k": "[]",
                "latency_ms": float(lat),
                "n_chars": len(texts[kk]),
                "language": "da",
                "text": texts[kk],
                "text_sha256": f"{kk:064d}",
            }
            for j, t, q, s, lat, kk in zip(i, at, pred, score, rng.gamma(4, 6, len(i)), k)
        ]
        fb = rng.random(len(i)) < 0.4
        moved = rng.random(len(i)) < 0.125
        feedback = [
            {
                "request_id": f"b{j}",
                "true_queue": names[rng.integers(0, len(names))] if mv else queues[kk],
                "source": "agent",
                "created_at": t + timedelta(hours=float(rng.gamma(2, 3))),
            }
            for j, t, kk, f, mv in zip(i, at, k, fb, moved)
            if f
        ]
        with engine.begin() as c:
            c.execute(P.insert(), rows)
            c.execute(F.insert(), feedback)
        print(f"  {i[-1] + 1:,} answers written, {time.perf_counter() - t0:.0f} s", flush=True)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("vacuum analyze"))
    elif engine.dialect.name == "sqlite":
        with engine.begin() as c:
            c.execute(sa.text("analyze"))
    return time.perf_counter() - t0


def measure(fn, memory: bool = True) -> dict:
    "Seconds of `fn()`, and (a second run, traced: tracing slows Python down) its peak Python memory in MB."
    t0 = time.perf_counter()
    fn()
    out = {"seconds": round(time.perf_counter() - t0, 3)}
    if memory:
        tracemalloc.start()
        fn()
        out["peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    return out


def monitor_in_memory(engine):
    from emailrouter.monitor import drift_report, estimate_accuracy, period_scores, windows
    from emailrouter.predlog import read_log

    df = read_log(engine, with_text=True)
    period_scores(df, "D", by="model_version")
    ref, cur = windows(df)
    estimate_accuracy(cur)
    drift_report(ref, cur)


def monitor_in_database(engine):
    from emailrouter.log_queries import LogFilter, drift_windows, estimate_sql, period_scores_sql, window_cut
    from emailrouter.monitor import drift_report

    with engine.connect() as c:
        period_scores_sql(c, LogFilter(), "D", by="model_version")
        estimate_sql(c, LogFilter(after=window_cut(c)))
        ref, cur = drift_windows(c)
    drift_report(ref, cur)


def production_page(engine, flt):
    "What the dashboard's production page computes for a filter: scores, tables, estimate, latency percentiles."
    from emailrouter.log_queries import P, confusion_sql, estimate_sql, log_counts, quantiles, queue_scores_sql

    with engine.connect() as c:
        counts = log_counts(c, flt, "D")
        queue_scores_sql(counts)
        confusion_sql(counts)
        estimate_sql(c, flt, counts)
        quantiles(c, P.c.latency_ms, flt, (0.5, 0.95), "D")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the database to fill (its er_* tables are replaced)")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--no-fill", action="store_true", help="measure the log already there")
    p.add_argument("--no-memory-path", action="store_true", help="skip reading the whole log into pandas")
    p.add_argument("--out", default=str(HERE / "results" / "log_scale.json"))
    args = p.parse_args(argv)
    from emailrouter.log_queries import LogFilter, log_span

    engine = log_engine(args.url)
    fill_s = None if args.no_fill else fill(engine, args.n)
    with engine.connect() as c:
        n, first, last = log_span(c)
    print(f"{n:,} answers ({engine.dialect.name}), filled in {fill_s or 0:.0f} s", flush=True)
    last_30 = LogFilter(start=str((last - timedelta(days=29)).date()))
    res = {"database": engine.dialect.name, "answers": n, "fill_seconds": round(fill_s, 1) if fill_s else None}
    res["monitor_database"] = measure(lambda: monitor_in_database(engine))
    print("monitor, in the database:", res["monitor_database"], flush=True)
    if not args.no_memory_path:
        res["monitor_in_memory"] = measure(lambda: monitor_in_memory(engine))
        print("monitor, read into pandas:", res["monitor_in_memory"], flush=True)
    for name, flt in (("all", LogFilter()), ("last_30_days", last_30), ("one_queue", LogFilter(queues=("regning",)))):
        production_page(engine, flt)  # warm the database's cache: a dashboard asks again and again
        res[f"production_page_{name}"] = measure(lambda: production_page(engine, flt), memory=False)
        print(f"production page, {name}:", res[f"production_page_{name}"], flush=True)
    res.update(cpu=cpu_features(), python=platform.python_version(), when=datetime.now().isoformat(timespec="seconds"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(out.read_text()) if out.exists() else {}
    runs[f"{res['database']}_{n}"] = res
    out.write_text(json.dumps(runs, indent=1) + "\n")
    engine.dispose()


if __name__ == "__main__":
    main()
