"""The learning loop at full size: a model trained on the demo inbox's first period meets the second (a new product
and queue, new prices, a phishing wave); after each window of streamed mail, agents label the mails each strategy picks
(uncertainty, disagreement, drift, random), the model is retrained from the log, and it is scored on the second
period's newest mail. One run, one CPU; results in bench/results/learning_loop.json (read by nbs/35_learning_loop).

    python bench/learning_loop.py                         # 3,000 + 2,500 mails, 6 rounds of 100 labels
    python bench/learning_loop.py --rounds 3 --budget 200
"""

import argparse
import json
from pathlib import Path

from emailrouter.core import cpu_features, load_settings, setup_logging
from emailrouter.data import validate_emails
from emailrouter.demo import make_demo_corpus
from emailrouter.demo_drift import make_drift_corpus
from emailrouter.labelling import STRATEGIES
from emailrouter.learning_loop import keyword_learner, run_loop, score_model
from emailrouter.tracking import package_versions

HERE = Path(__file__).resolve().parent


def first_period_accuracy(first, settings) -> float:
    "What the drift takes from: the learner on the first period's newest fifth, trained on the rest (true queues)."
    rows, _ = validate_emails(first[["id", "received_at", "subject", "body", "queue"]], settings)
    rows = rows.sort_values("timestamp", ignore_index=True)
    cut = int(len(rows) * 0.8)
    truth = dict(zip(first["id"].astype(str), first["true_queue"]))
    test = rows.iloc[cut:].assign(true_queue=lambda d: d["id"].map(truth))
    return score_model(keyword_learner(rows["text"][:cut], rows["label"][:cut]), test)["accuracy"]


def summarise(curves, strategies, before_drift) -> dict:
    """Per strategy: final accuracy and coverage, the labels it needed to reach random's final accuracy, and the share
    of the drift's loss it recovered."""
    start = float(curves.loc[curves["round"] == 0, "accuracy"].iloc[0])
    rand = curves[curves["strategy"] == "random"]
    goal = float(rand["accuracy"].iloc[-1]) if len(rand) else None
    out = {}
    for s in strategies:
        c = curves[curves["strategy"] == s]
        reached = c.loc[c["accuracy"] >= goal, "labels"] if goal is not None else c.iloc[:0]["labels"]
        final = float(c["accuracy"].iloc[-1])
        out[s] = {
            "final_accuracy": final,
            "final_coverage_95": float(c["coverage_95"].iloc[-1]),
            "final_new_queue_recall": float(c["new_queue_recall"].iloc[-1]),
            "labels_to_random_final": int(reached.iloc[0]) if len(reached) else None,
            "recovered_share": (final - start) / (before_drift - start) if before_drift > start else None,
        }
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=int, default=3000, help="mails of the first period (default 3000, the quickstart's)")
    p.add_argument("--second", type=int, default=2500, help="mails of the second period (default 2500)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--budget", type=int, default=100, help="labels per round and strategy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "learning_loop.json"))
    args = p.parse_args(argv)
    setup_logging("WARNING")
    s = load_settings()
    first = make_demo_corpus(args.first, seed=args.seed, messy=False)
    second = make_drift_corpus(args.second, seed=args.seed)
    curves = run_loop(first, second, STRATEGIES, args.rounds, args.budget, settings=s, seed=args.seed, say=print)
    before = first_period_accuracy(first, s)
    results = {
        "cpu": cpu_features(),
        "versions": package_versions(),
        "learner": "the keyword model (TF-IDF + logistic regression)",
        "first": f"demo:{args.first} (first period)",
        "second": f"{args.second} mails of the second period, the newest 20% the test set",
        "rounds_per_strategy": args.rounds,
        "budget_per_round": args.budget,
        "strategies": list(STRATEGIES),
        "first_period_accuracy": before,
        "rounds": curves.to_dict("records"),
        "summary": summarise(curves, STRATEGIES, before),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
