"""Danish routing, side by side: the offline MiniLM and multilingual-e5-small (vocabulary trimmed), each alone and fused
with TF-IDF + LR, on one demo split and on hand-written Danish mails from outside the demo generator, in one run on one
CPU.

For each encoder: `train()` on the same demo split (fusion weight and thresholds chosen on its validation split), then
on the test split against the recorded queues (the labels agents gave, with the demo's label noise) and the true
queues, and on tests/data/handwritten_da.csv (93 mails written by hand, never used for training or tuning): accuracy and
macro-F1 of the encoder alone, TF-IDF + LR alone and the fused scores the router serves; the auto-routed share at the
95% target; training time; serving speed (mails/s on the test split) of PyTorch fp32, bfloat16 where the CPU computes
in it natively, and the ONNX variant the export gate kept, against a plain `transformers` pipeline on the same model.

    python bench/danish.py                          # demo:5000, both encoders
    python bench/danish.py --demo 3000 --models minilm
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from emailrouter.core import cpu_features, load_settings, setup_logging
from emailrouter.data import load_emails
from emailrouter.demo import make_demo_corpus
from emailrouter.metrics import route_metrics
from emailrouter.model import EmailRouter, softmax
from emailrouter.text import clean_email
from emailrouter.tracking import package_versions
from emailrouter.train import BertParams, train

HERE = Path(__file__).resolve().parent
HANDWRITTEN = HERE.parent / "tests" / "data" / "handwritten_da.csv"
ENCODERS = {  # name: (base model, learning rate)
    "minilm": (None, 2e-4),  # the offline default and its tuned rate
    "e5-small": ("multilingual-e5-small", 5e-5),  # a lower rate keeps more of what the encoder knew
}


def scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    m = route_metrics(probs, labels)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def mails_per_second(fn, texts: list[str], repeats: int = 2) -> float:
    fn(texts[:16])  # warm-up
    best = min(_timed(fn, texts) for _ in range(repeats))
    return len(texts) / best


def _timed(fn, texts) -> float:
    t = time.perf_counter()
    fn(texts)
    return time.perf_counter() - t


def speed(model_dir: Path, texts: list[str]) -> dict:
    "Mails/s of each serving variant on `texts`, with a plain transformers pipeline as the reference."
    import torch
    from transformers import pipeline

    out = {}
    pipe = pipeline("text-classification", model=str(model_dir), device=-1, truncation=True, max_length=128)
    out["transformers_pipeline_fp32"] = mails_per_second(lambda x: pipe(x, batch_size=32), texts)
    router = EmailRouter(model_dir)
    out["torch_fp32"] = mails_per_second(router.predict_logits, texts)
    if cpu_features()["native_bf16"]:
        router.model = router.model.to(torch.bfloat16)
        out["torch_bf16"] = mails_per_second(router.predict_logits, texts)
    onnx = EmailRouter(model_dir, backend="onnx")
    out[f"onnx_{onnx.variant}"] = mails_per_second(onnx.predict_logits, texts)
    return out


def evaluate(router: EmailRouter, texts: list[str], labels: dict[str, np.ndarray]) -> dict:
    "Encoder alone, keyword model alone and the served (fused) scores against each set of labels."
    logits = router.predict_logits(texts)
    variants = {"encoder": softmax(logits, router.temperature), "served": router.calibrated(logits, texts)}
    if router.baseline is not None:
        keyword = np.zeros_like(variants["encoder"])
        keyword[:, router.baseline.classes_] = router.baseline.predict_proba(texts)
        variants["tfidf_lr"] = keyword
    return {name: {k: scores(p, y) for k, y in labels.items()} for name, p in variants.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", type=int, default=5000, help="size of the demo inbox (default 5000)")
    p.add_argument("--models", nargs="+", choices=list(ENCODERS), default=list(ENCODERS))
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    setup_logging("INFO")
    # fusion "on": every encoder gets its fused twin, weighted on validation, to compare with it alone
    s = load_settings(output_dir=Path(args.out) / "runs", seed=args.seed, progress=False, fusion="on")
    data = load_emails(f"demo:{args.demo}", settings=s)
    print(data, flush=True)
    test = data.frame("test")
    truth = make_demo_corpus(args.demo, seed=args.seed).set_index("id")["true_queue"]
    labels = {
        "recorded": test["label"].to_numpy(),
        "true": test["id"].map(truth).map(data.tag2id).fillna(-1).astype(int).to_numpy(),
    }
    hand = pd.read_csv(HANDWRITTEN, keep_default_na=False)
    hand_texts = [clean_email(r.subject or None, r.body) for r in hand.itertuples()]
    hand_labels = {"handwritten": hand["queue"].map(data.tag2id).fillna(-1).astype(int).to_numpy()}
    results = {
        "cpu": cpu_features(),
        "versions": package_versions(),
        "data": f"demo:{args.demo}",
        "splits": {k: len(v) for k, v in data.splits.items()},
        "handwritten_mails": len(hand),
        "models": {},
    }
    for name in args.models:
        base, lr = ENCODERS[name]
        params = BertParams.from_data(data, s, epochs=args.epochs, learning_rate=lr)
        res = train(data, params, settings=s, base_model=base, output_dir=Path(args.out) / "runs" / f"danish-{name}")
        router = EmailRouter(res.model_dir)
        m = res.metrics
        results["models"][name] = {
            "base_model": base or "all-MiniLM-L6-v2 (offline default)",
            "learning_rate": lr,
            "train_seconds": res.train_seconds,
            "fusion_weight": m.get("fusion_weight", 0.0),
            "auto_routed_test": m.get("test_coverage"),
            "auto_routed_accuracy_test": m.get("test_routed_accuracy"),
            "demo_test": evaluate(router, test["text"].tolist(), labels),
            "handwritten": evaluate(router, hand_texts, hand_labels),
            "mails_per_second": speed(res.model_dir, test["text"].tolist()),
            "parameters_millions": sum(p.numel() for p in router.model.parameters()) / 1e6,
        }
        print(name, json.dumps(results["models"][name], indent=1), flush=True)
    out = Path(args.out) / "danish.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
