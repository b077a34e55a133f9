"""Explanations at interactive speed: seconds per explanation of a typical demo mail and of a long complaint (about
500 words, several windows), and the faithfulness of each way of explaining them, in one run on one CPU.

Compared, on the demo model the notebooks fine-tune (5,000 demo mails, 3 epochs; trained here if missing):
- `all windows`: every window of a long mail attributed (the explainer's default before the `read` scope);
- `read`: only what the model read (its head and tail cut), one window;
- `read, 32 first steps`: the same, starting the adaptive step count at 32 instead of 16;
- `asked again`: an answer kept by the explainer's cache.
Faithfulness: comprehensiveness and sufficiency of the top 20% of words (`emailrouter.explain.faithfulness`) on
typical mails and on long complaints, against random words.

    python bench/explain.py                 # writes bench/results/explain.json
    python bench/explain.py --model DIR     # another model folder
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from emailrouter.core import cpu_features, load_settings, setup_logging
from emailrouter.data import load_emails
from emailrouter.demo import make_demo_corpus
from emailrouter.explain import Explainer, faithfulness
from emailrouter.model import EmailRouter
from emailrouter.tracking import package_versions
from emailrouter.train import BertParams, train

HERE = Path(__file__).resolve().parent
CACHE = HERE.parent / "emailrouter-runs" / "notebooks" / "demo-5000"  # the explain notebook's model
CONFIGS = {  # name: (Explainer arguments, scope)
    "all windows (16 first steps)": ({}, "all"),
    "read (16 first steps)": ({}, "read"),
    "read (32 first steps)": ({"n_steps": 32}, "read"),
}


def long_complaints(test, n: int, words: int = 500, seed: int = 0) -> list[str]:
    "`n` long complaints of about `words` words: one queue's narrative demo mails run together, as a long thread."
    rng, out = np.random.default_rng(seed), []
    narratives = test[test["kind"] == "narrative"]
    for q in rng.choice(narratives["queue"].unique(), n, replace=False):
        texts, total = narratives[narratives["queue"] == q]["text"].sample(frac=1, random_state=seed).tolist(), 0
        picked = []
        for t in texts * 20:
            picked.append(t)
            total += len(t.split())
            if total >= words:
                break
        out.append(" ".join(" ".join(picked).split()[:words]))
    return out


def seconds(ex: Explainer, texts: list[str], scope: str, repeat: int) -> float:
    "Median seconds to explain one of `texts` on its own, nothing kept between asks."
    ex.explain(texts[:1], scope=scope)  # warm-up
    runs = []
    for _ in range(repeat):
        for t in texts:
            ex._cache.clear()
            t0 = time.perf_counter()
            ex.explain([t], scope=scope)
            runs.append(time.perf_counter() - t0)
    return float(np.median(runs))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a model folder (default: the explain notebook's demo model, trained if missing)")
    p.add_argument("--typical", type=int, default=10, help="typical mails timed (default 10)")
    p.add_argument("--long", type=int, default=4, help="long complaints timed (default 4)")
    p.add_argument("--faithful", type=int, default=40, help="typical mails scored for faithfulness (default 40)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "explain.json"))
    args = p.parse_args(argv)
    setup_logging("INFO")
    s = load_settings(output_dir=HERE / "results" / "runs", progress=False)
    demo = load_emails("demo:5000", settings=s)
    model = Path(args.model) if args.model else CACHE / "model"
    if not args.model and not (model / "config.json").exists():
        train(demo, BertParams.from_data(demo, s, epochs=3.0, learning_rate=2e-4), settings=s, output_dir=CACHE)
    router = EmailRouter(model, backend="torch")
    test = demo.frame("test").join(make_demo_corpus(5000, seed=s.seed).set_index("id")[["kind"]], on="id")
    lengths = test["text"].str.split().str.len()
    typical = test.loc[(lengths - lengths.median()).abs().sort_values().index[: args.typical], "text"].tolist()
    faithful_sample = test.sample(args.faithful, random_state=0)["text"].tolist()
    longs = long_complaints(test, args.long)
    tokens = [len(router.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in longs]
    results = {
        "cpu": cpu_features(),
        "versions": package_versions(),
        "model": "MiniLM fine-tuned on demo:5000 (3 epochs)" if not args.model else str(model.name),
        "max_length": router.max_length,
        "typical_mail_words": float(np.median([len(t.split()) for t in typical])),
        "long_complaint_words": float(np.median([len(t.split()) for t in longs])),
        "long_complaint_tokens": float(np.median(tokens)),
        "configs": {},
    }
    for name, (kw, scope) in CONFIGS.items():
        ex = Explainer(router, scope=scope, **kw)
        row = {
            "typical_s": seconds(ex, typical, scope, args.repeat),
            "long_s": seconds(ex, longs, scope, args.repeat),
            "windows_long": float(np.median([e.windows for e in ex.explain(longs)])),
            "median_relative_error": float(
                np.median([e.delta / max(abs(e.scores.sum() - e.delta), 1e-6) for e in ex.explain(typical + longs)])
            ),
        }
        for which, texts in (("typical", faithful_sample), ("long", longs)):
            f = faithfulness(ex, texts, share=0.2)
            row[f"faithfulness_{which}"] = {
                m: {k: round(float(v), 4) for k, v in f.loc[m, ["comprehensiveness", "sufficiency"]].items()}
                for m in ("integrated gradients", "random words")
            }
        t0 = time.perf_counter()
        ex.explain(longs[:1])  # asked again: kept
        row["asked_again_s"] = time.perf_counter() - t0
        results["configs"][name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
