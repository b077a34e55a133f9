"""Tuning benchmark: an Optuna study within a wall-clock budget, against the untuned defaults and TF-IDF + LR.

For each dataset (BANKING77's training split with our own stratified 80/10/10 split, or the demo inbox with its time
split), in one process and on the same split:
  1. TF-IDF + logistic regression, fitted on train;
  2. the untuned defaults fine-tuned (time per epoch, time to reach the baseline's validation accuracy, peak
     GPU memory);
  3. `emailrouter.tune.tune` with the default search space, median pruning and validation macro-F1, for --budget-min;
  4. the best trial's configuration retrained from scratch.
The held-out test split is scored only in 1, 2 and 4. Results go to OUT/<name>-results.json and the study's trials to
OUT/<name>-study.json (<name>-pareto-... with --latency) (each trial's state, values, parameters, distributions and
per-epoch scores).

    python bench/tune_study.py --datasets banking77 --budget-min 30          # a CPU study (about 5 trials on 2 cores)
    python bench/tune_study.py --datasets banking77,demo --budget-min 4,2     # on a GPU
    python bench/tune_study.py --datasets demo --budget-min 45 --latency --space latency --skip-defaults
        # accuracy vs CPU latency on the demo inbox: a Pareto front over input length, learning rate and epochs
"""

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import optuna
import torch
from transformers import TrainerCallback

from emailrouter.baseline import baseline_scores
from emailrouter.core import load_settings, setup_logging
from emailrouter.data import load_emails
from emailrouter.studies import best_params, params_for, trials_frame
from emailrouter.tracking import package_versions
from emailrouter.train import BertParams, train
from emailrouter.tune import tune

HERE = Path(__file__).resolve().parent
BANKING77 = HERE.parent.parent / "shared" / "data" / "banking77" / "train.csv"
log = logging.getLogger("bench.tune_study")


class EvalClock(TrainerCallback):
    "Seconds since training began at each evaluation, with the validation metrics then."

    def __init__(self):
        self.t0, self.points = None, []

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        self.points.append(
            {
                "seconds": time.perf_counter() - self.t0,
                "epoch": state.epoch,
                "accuracy": (metrics or {}).get("eval_accuracy"),
                "macro_f1": (metrics or {}).get("eval_macro_f1"),
            }
        )


def dataset(name, out, base_model, banking77=BANKING77):
    "Settings and data for `name` ('banking77' or 'demo'), writing under `out`."
    common = dict(
        output_dir=out / name,
        tune_storage=f"sqlite:///{(out / name / 'optuna.db').resolve()}",
        progress=False,
        **({"base_model": base_model} if base_model else {}),
    )
    if name == "banking77":
        s = load_settings(
            text_column="text",
            label_column="category",
            subject_column="",
            timestamp_column="",
            id_column="",
            split="stratified",
            min_examples_per_label=5,
            **common,
        )
        return s, load_emails(str(banking77), settings=s)
    if name == "demo":
        s = load_settings(**common)
        return s, load_emails("demo:5000", settings=s)
    raise SystemExit(f"unknown dataset {name!r}: use banking77 or demo")


def fit(data, params, s, base, folder):
    "Fine-tune and time it; returns a dict of figures."
    clock = EvalClock()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    res = train(
        data, params, settings=s, base_model=base, output_dir=folder, onnx=False, baseline=False, callbacks=[clock]
    )
    m = res.metrics
    return {
        "params": res.params.flat(),
        "device": res.device,
        "precision": res.precision,
        "train_seconds": res.train_seconds,
        "train_samples_per_second": res.train_samples_per_second,
        "epochs_run": float(res.trainer.state.epoch),
        "evaluations": clock.points,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "validation": {"accuracy": m["validation_accuracy"], "macro_f1": m["validation_macro_f1"]},
        "test": {"accuracy": m["test_accuracy"], "macro_f1": m["test_macro_f1"]},
    }


def _portable(v):
    "A trial attribute without this machine's paths: a local base-model folder is named by its last two parts."
    if isinstance(v, dict) and isinstance(v.get("base_model"), str) and Path(v["base_model"]).is_absolute():
        return {**v, "base_model": "/".join(Path(v["base_model"]).parts[-2:])}
    return v


def study_json(study):
    "The study's trials as JSON: what `optuna.trial.create_trial` needs to rebuild each one."
    trials = []
    for t in study.trials:
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "values": t.values,
                "params": t.params,
                "distributions": {k: optuna.distributions.distribution_to_json(d) for k, d in t.distributions.items()},
                "intermediate_values": {str(k): v for k, v in t.intermediate_values.items()},
                "user_attrs": {k: _portable(v) for k, v in t.user_attrs.items() if k in ("fail_reason", "hp")},
                "seconds": (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None,
            }
        )
    return {
        "study_name": study.study_name,
        "directions": [d.name for d in study.directions],
        "user_attrs": dict(study.user_attrs),
        "trials": trials,
    }


def latency_space(trial):
    """A search space for the accuracy/latency trade-off on 2 CPU cores: input length (what latency depends on), and
    the few knobs that decide accuracy at a given length, with short schedules so that a study on 2 cores sees several
    lengths."""
    return {
        "max_length": trial.suggest_categorical("max_length", [32, 64, 128, 256]),
        "truncation": trial.suggest_categorical("truncation", ["head", "head_tail"]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 4e-4, log=True),
        "epochs": trial.suggest_int("epochs", 2, 3),
    }


def run(
    name,
    out,
    budget_s,
    base_model,
    smoke=False,
    runs=None,
    banking77=BANKING77,
    latency=False,
    space=None,
    skip_defaults=False,
):
    runs = runs or out
    s, data = dataset(name, runs, base_model, banking77)
    if smoke:  # a quick check of the whole path: a few hundred rows
        for split, n in (("train", 400), ("validation", 200), ("test", 200)):
            data.splits[split] = data.splits[split].shuffle(seed=0).select(range(min(n, len(data.splits[split]))))
    base = s.base_model
    res = {
        "dataset": name,
        "rows": {k: len(v) for k, v in data.splits.items()},
        "labels": len(data.unique_tags),
        "budget_seconds": budget_s,
        "base_model": Path(base).name,
    }
    tag = f"{name}-pareto" if latency else name
    save = lambda: (out / f"{tag}-results.json").write_text(json.dumps(res, indent=2, default=str))
    t = baseline_scores(data)
    res["tfidf_lr"] = {
        "validation": {"accuracy": t["validation_accuracy"], "macro_f1": t["validation_macro_f1"]},
        "test": {"accuracy": t["test_accuracy"], "macro_f1": t["test_macro_f1"]},
        "fit_seconds": t["fit_seconds"],
    }
    log.info("%s: TF-IDF + LR test accuracy %.4f", name, t["test_accuracy"])
    save()
    # the untuned defaults: as `emailrouter train` runs them (BANKING77's queries are short: 64 tokens, as the
    # analysis notebook)
    if not skip_defaults:
        defaults = BertParams.from_data(data, s, **({"max_length": 64} if name == "banking77" else {}))
        res["defaults"] = fit(data, defaults, s, base, runs / name / "defaults")
        target = res["tfidf_lr"]["validation"]["accuracy"]
        res["defaults"]["seconds_to_baseline_validation_accuracy"] = next(
            (p["seconds"] for p in res["defaults"]["evaluations"] if (p["accuracy"] or 0) >= target), None
        )
        log.info(
            "%s: defaults test accuracy %.4f in %.0f s",
            name,
            res["defaults"]["test"]["accuracy"],
            res["defaults"]["train_seconds"],
        )
        save()
    t0 = time.perf_counter()
    study = f"{tag}-study"
    r = tune(data, s, n_trials=1000, timeout=budget_s, study_name=study, latency=latency, hp_space=space)
    res["study"] = {
        "seconds": time.perf_counter() - t0,
        "trials": len(r.study.trials),
        "states": trials_frame(r.study)["state"].value_counts().to_dict(),
    }
    (out / f"{study}.json").write_text(json.dumps(study_json(r.study), indent=1, default=str))
    save()
    best = best_params(r.study)
    params, base_best = params_for(data, best, s)
    res["tuned"] = {
        "trial": best["trial"],
        "validation_in_study": best["values"][0],
        **fit(data, params, s, base_best, runs / name / "tuned"),
    }
    log.info("%s: tuned test accuracy %.4f", name, res["tuned"]["test"]["accuracy"])
    save()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="banking77", help="comma-separated: banking77, demo")
    p.add_argument("--budget-min", default="30", help="study budget in minutes, one per dataset or one for all")
    p.add_argument("--base-model", default=None, help="default: the offline MiniLM")
    p.add_argument("--out", default=str(HERE / "results" / "tune"))
    p.add_argument("--banking77", default=str(BANKING77), help="BANKING77 train.csv")
    p.add_argument("--runs", default=None, help="where models, MLflow and the study database go (default: --out)")
    p.add_argument("--smoke", action="store_true", help="a few hundred rows per split, to check the path end to end")
    p.add_argument(
        "--latency", action="store_true", help="a second objective, CPU ms per mail with the serving backend (Pareto)"
    )
    p.add_argument(
        "--space",
        choices=["default", "latency"],
        default="default",
        help="the search space: emailrouter's default, or input length, learning rate and epochs only",
    )
    p.add_argument(
        "--skip-defaults", action="store_true", help="do not fine-tune the untuned defaults (already measured)"
    )
    args = p.parse_args(argv)
    setup_logging("INFO")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.datasets.split(",")
    budgets = [float(b) * 60 for b in args.budget_min.split(",")]
    budgets = budgets * len(names) if len(budgets) == 1 else budgets
    machine = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": package_versions(),
    }
    (out / "machine.json").write_text(json.dumps(machine, indent=2))
    for name, budget in zip(names, budgets):
        try:
            run(
                name,
                out,
                budget,
                args.base_model,
                args.smoke,
                Path(args.runs) if args.runs else None,
                args.banking77,
                args.latency,
                latency_space if args.space == "latency" else None,
                args.skip_defaults,
            )
        except Exception:
            log.exception("%s failed", name)  # the next dataset still runs; the results file says how far it got
    return 0


if __name__ == "__main__":
    sys.exit(main())
