"""Batch scoring throughput: one process against Ray Data on this machine, the same model and archive, in one run.

python bench/batch.py MODEL_FOLDER --n 20000        # demo mails; results in bench/results/batch.json
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from emailrouter.batch import score_archive
from emailrouter.core import load_settings, setup_logging
from emailrouter.demo import make_demo_corpus
from emailrouter.tracking import package_versions

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model folder with its ONNX export, or a registry URI")
    p.add_argument("--n", type=int, default=20000, help="demo mails in the archive")
    p.add_argument("--files", type=int, default=8, help="Parquet files the archive is split into")
    p.add_argument("--out", default=str(HERE / "results" / "batch.json"))
    args = p.parse_args(argv)
    setup_logging("WARNING")
    s = load_settings(progress=False)
    work = Path(tempfile.mkdtemp())
    mails = make_demo_corpus(args.n, seed=11)[["id", "subject", "body"]]
    (work / "archive").mkdir()
    step = -(-len(mails) // args.files)
    for i in range(args.files):
        mails.iloc[i * step : (i + 1) * step].to_parquet(work / "archive" / f"mails-{i:02d}.parquet", index=False)
    runs = {}
    for name, kw in (
        ("one process (ONNX Runtime, all cores)", dict(engine="local")),
        (f"Ray Data, {os.cpu_count()} actors x 1 thread", dict(engine="ray", actors=os.cpu_count())),
    ):
        runs[name] = score_archive(work / "archive", work / name.split()[0].lower(), args.model, settings=s, **kw)
        runs[name].pop("out")
        runs[name]["model"] = Path(args.model).name
    a = pd.read_parquet(work / "one").set_index("id").sort_index()
    b = pd.read_parquet(work / "ray").set_index("id").sort_index()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "mails": len(mails),
        "files": args.files,
        "model": Path(args.model).name,
        "runs": runs,
        "same_queue_share": float((a["queue"] == b["queue"]).mean()),
        "versions": package_versions(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in result.items() if k != "versions"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
