"""Real-data benchmark: fine-tune the offline MiniLM on BANKING77 and compare with TF-IDF + logistic regression.

Trains on BANKING77's training split (../shared/data/banking77/train.csv where it exists, else the Hugging Face hub's
PolyAI/banking77, which needs a network; --data chooses) with our own stratified validation and held-out test splits.
With --test (the official test split, not shipped here) nothing more is held out: both models train on the whole
training split less a small validation split (5%) and are scored on the given test set. Both models are trained
and scored on the same splits in this one process; the results go to stdout and bench/results/.

    python bench/banking77.py                          # defaults = the BertParams used for the reported figures
    python bench/banking77.py --test path/to/test.csv  # also score the official test split
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from emailrouter.core import cpu_features, load_settings, setup_logging
from emailrouter.data import DataError, load_emails
from emailrouter.metrics import route_metrics
from emailrouter.model import EmailRouter
from emailrouter.sources import read_source
from emailrouter.text import clean_email
from emailrouter.tracking import package_versions
from emailrouter.train import BertParams, train

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "banking77" / "train.csv"  # where the project's machines keep it
# without that copy, the training split from the Hugging Face hub (needs a network): the same 10,003 queries
DEFAULT_DATA = str(SHARED) if SHARED.exists() else "hf:PolyAI/banking77:train"


def tfidf_baseline(train_df, test_sets):
    "TF-IDF (word 1-2 grams + char 2-5 grams) + logistic regression, as in Casanueva et al. (2020)."
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    pipe = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=10, max_iter=3000),
    )
    t = time.perf_counter()
    pipe.fit(train_df["text"], train_df["label"])
    fit_s = time.perf_counter() - t
    out = {"fit_seconds": fit_s}
    for name, df in test_sets.items():
        out[name] = route_metrics(pipe.predict(df["text"]), df["label"].to_numpy())
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help=f"BANKING77's training split: a CSV (columns text, category) or hf:<name>[:split]; default {DEFAULT_DATA}",
    )
    p.add_argument("--test", help="an extra test CSV to score, e.g. the official BANKING77 test split")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-length", type=int, default=None, help="default: EMAILROUTER_MAX_LENGTH")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--base-model", default=None, help="default: the offline MiniLM")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    setup_logging("INFO")

    s = load_settings(
        text_column="text",
        label_column="label" if args.data.startswith("hf:") else "category",
        subject_column="",
        timestamp_column="",
        id_column="",
        split="stratified",
        val_size=0.05 if args.test else 0.1,
        test_size=0.1,
        seed=args.seed,
        min_examples_per_label=5,
        output_dir=Path(args.out) / "runs",
        **({"base_model": args.base_model} if args.base_model else {}),
    )
    data = load_emails(args.data, settings=s)
    print(data, "\n", data.report, sep="", flush=True)
    test_sets = {} if args.test else {"heldout_test": data.frame("test")}
    if args.test:  # the external test set is the test: our held-out part goes back into training
        from datasets import concatenate_datasets

        sp = data.splits
        data.splits["train"], data.splits["test"] = (
            concatenate_datasets([sp["train"], sp["test"]]),
            sp["test"].select([]),
        )
        print(
            f"training on {len(data.splits['train'])} rows, validating on {len(data.splits['validation'])}", flush=True
        )
    if (
        args.test
    ):  # an external test set is scored whole: no row dropped, a label the model does not know counts as wrong
        raw = read_source(args.test, settings=s)
        official = pd.DataFrame(
            {
                "text": [clean_email(None, t) for t in raw[s.text_column]],
                "label": [data.tag2id.get(str(y).strip(), -1) for y in raw[s.label_column]],
            }
        )
        test_sets["official_test"] = official
        print(
            f"official test: {len(official)} rows, {int((official.label < 0).sum())} with a label outside the "
            "training set",
            flush=True,
        )

    base = tfidf_baseline(data.frame("train"), test_sets)
    print(f"TF-IDF + LR: {json.dumps(base)}", flush=True)

    knobs = {k: v for k, v in dict(epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size).items() if v}
    if args.max_length:
        knobs["max_length"] = args.max_length
    params = BertParams.from_data(data, s, **knobs)
    res = train(data, params, settings=s, output_dir=Path(args.out) / "runs" / "banking77", evaluate_test=not args.test)
    bert = {
        "train_seconds": res.train_seconds,
        "train_samples_per_second": res.train_samples_per_second,
        "validation": {
            k.removeprefix("validation_"): res.metrics[k] for k in ("validation_accuracy", "validation_macro_f1")
        },
        "epochs_run": float(res.trainer.state.epoch),
    }
    if not args.test:
        bert["heldout_test"] = {
            k.removeprefix("test_"): res.metrics[k] for k in ("test_accuracy", "test_macro_f1", "test_weighted_f1")
        }
        if res.metrics.get("fusion_weight"):  # what the router serves: fused with TF-IDF + LR where validation chose it
            bert["served_heldout_test"] = {
                "fusion_weight": res.metrics["fusion_weight"],
                "accuracy": res.metrics["fused_test_accuracy"],
                "macro_f1": res.metrics["fused_test_macro_f1"],
            }
    if "official_test" in test_sets:
        router = EmailRouter(res.model_dir)
        df = test_sets["official_test"]
        pred = [data.tag2id[r["queue"]] for r in router.route_texts(df["text"].tolist())]
        bert["official_test"] = route_metrics(np.array(pred), df["label"].to_numpy())

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "cpu": cpu_features(),
        "device": res.device,
        "precision": res.precision,
        "rows": {k: len(v) for k, v in data.splits.items()},
        "params": params.flat(),
        "base_model": Path(s.base_model).name,
        "bert": bert,
        "tfidf_lr": base,
        "versions": package_versions(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / ("banking77_official_test.json" if args.test else "banking77.json")).write_text(
        json.dumps(result, indent=2)
    )
    name = "official_test" if args.test else "heldout_test"
    b, t = bert[name], base[name]
    print(f"\n| model | {name.replace('_', ' ')} accuracy | macro-F1 | train time | samples/s |\n|---|---|---|---|---|")
    print(
        f"| {Path(s.base_model).name} fine-tuned ({res.device}) | {b['accuracy']:.4f} | {b['macro_f1']:.4f} | "
        f"{res.train_seconds:.0f} s | {res.train_samples_per_second:.1f} |"
    )
    if "served_heldout_test" in bert and not args.test:
        f = bert["served_heldout_test"]
        print(
            f"| fused with TF-IDF + LR (weight {f['fusion_weight']:.2f}) | {f['accuracy']:.4f} "
            f"| {f['macro_f1']:.4f} | | |"
        )
    print(f"| TF-IDF + LR | {t['accuracy']:.4f} | {t['macro_f1']:.4f} | {base['fit_seconds']:.0f} s | – |")
    print(
        f"accuracy ratio fine-tuned / TF-IDF: {b['accuracy'] / t['accuracy']:.4f}; published anchors (official "
        "test): BERT-tuned 93.66, TF-IDF+LR ~91.6"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        print(f"banking77: error: {e}", file=sys.stderr)
        sys.exit(2)
