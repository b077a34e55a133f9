"""Fine-tuning that keeps what the encoder knew: the quickstart's MiniLM run as it is, with layer-wise learning-rate
decay and with frozen embeddings, on one demo split, scored on the demo test split and on the hand-written Danish mails
that no generator wrote (tests/data/handwritten_da.csv), each alone and fused with TF-IDF + LR, in one run on one CPU.

    python bench/knowledge.py                        # demo:3000 (the quickstart's inbox), three variants
    python bench/knowledge.py --variants plain llrd   # a subset
"""

import argparse
import json
from pathlib import Path

import pandas as pd
from danish import HANDWRITTEN, evaluate

from emailrouter.core import cpu_features, load_settings, setup_logging
from emailrouter.data import load_emails
from emailrouter.model import EmailRouter
from emailrouter.text import clean_email
from emailrouter.tracking import package_versions
from emailrouter.train import BertParams, train

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name: BertParams overrides on top of the quickstart's (3 epochs, learning rate 2e-4)
    "plain": {},
    "llrd": {"layer_lr_decay": 0.7},
    "frozen_embeddings": {"freeze_embeddings": True},
    "both": {"layer_lr_decay": 0.7, "freeze_embeddings": True},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", type=int, default=3000, help="size of the demo inbox (default 3000, the quickstart's)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["plain", "llrd", "frozen_embeddings"])
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--cpu-bf16",
        choices=["auto", "on", "off"],
        default="on",
        help="bfloat16 autocast on a CPU, the same for every variant (default on; off on CPUs without native bf16)",
    )
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    setup_logging("INFO")
    s = load_settings(
        output_dir=Path(args.out) / "runs", seed=args.seed, progress=False, fusion="on", cpu_bf16=args.cpu_bf16
    )
    data = load_emails(f"demo:{args.demo}", settings=s)
    test = data.frame("test")
    hand = pd.read_csv(HANDWRITTEN, keep_default_na=False)
    hand_texts = [clean_email(r.subject or None, r.body) for r in hand.itertuples()]
    results = {
        "cpu": cpu_features(),
        "versions": package_versions(),
        "data": f"demo:{args.demo}",
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "handwritten_mails": len(hand),
        "variants": {},
    }
    for name in args.variants:
        params = BertParams.from_data(data, s, epochs=args.epochs, learning_rate=args.lr, **VARIANTS[name])
        res = train(data, params, settings=s, output_dir=Path(args.out) / "runs" / f"knowledge-{name}")
        router = EmailRouter(res.model_dir)
        results["variants"][name] = {
            "params": VARIANTS[name],
            "train_seconds": res.train_seconds,
            "precision": res.precision,
            "fusion_weight": res.metrics.get("fusion_weight", 0.0),
            "validation_accuracy": res.metrics.get("validation_accuracy"),
            "demo_test": evaluate(router, test["text"].tolist(), {"recorded": test["label"].to_numpy()}),
            "handwritten": evaluate(
                router, hand_texts, {"handwritten": hand["queue"].map(data.tag2id).fillna(-1).astype(int).to_numpy()}
            ),
        }
        print(name, json.dumps(results["variants"][name], indent=1), flush=True)
    out = Path(args.out) / "knowledge.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
