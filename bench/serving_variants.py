"""Serving variants on one CPU: the export gate's candidates (ONNX int8, int8 with near ties rescored in fp32, fp32;
PyTorch fp32 and bfloat16) timed and checked side by side on a trained model, against a plain `transformers` pipeline
on the same model, and the variant `serving_router` picks with EMAILROUTER_SERVE_BACKEND=auto.

The model is re-exported through `export_onnx` on its validation split (the gate, as training runs it); each variant is
then timed on the test split (best of three passes after a warm-up, the texts already cleaned) and scored against
PyTorch fp32 (top-1 agreement) and the recorded queues (accuracy of the served, calibrated and fused scores).

    emailrouter train --demo                             # the quickstart model, then:
    python bench/serving_variants.py                     # the newest model under emailrouter-runs/train
    python bench/serving_variants.py --model DIR --data demo:3000
"""

import argparse
import json
import time
from pathlib import Path

from emailrouter.core import cpu_features, load_settings, setup_logging
from emailrouter.data import load_emails
from emailrouter.export import export_onnx, serving_router, variant_router
from emailrouter.tracking import package_versions

HERE = Path(__file__).resolve().parent


def mails_per_second(fn, texts: list[str], repeats: int = 3) -> float:
    fn(texts[:16])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - t)
    return len(texts) / best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model folder (default: the newest emailrouter-runs/train/*/model)")
    ap.add_argument("--data", default="demo:3000", help="the source the model was trained on, for the same split")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "serving_variants.json")
    a = ap.parse_args(argv)
    setup_logging()
    model = a.model or max(Path("emailrouter-runs/train").glob("*/model"), key=lambda p: p.stat().st_mtime)
    data = load_emails(a.data, settings=load_settings())
    val, test = data.frame("validation"), data.frame("test")
    texts, labels = test["text"].tolist(), test["label"].to_numpy()
    t = time.perf_counter()
    parity = export_onnx(model, val["text"].tolist(), val["label"].tolist())
    export_seconds = time.perf_counter() - t

    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model), device=-1, truncation=True, max_length=128)
    baseline = mails_per_second(lambda x: pipe(x, batch_size=32), texts)
    ref = variant_router(model, "torch").predict_proba(texts)
    variants = {}
    for v in parity["passing"]:
        router = variant_router(model, v)
        probs = router.predict_proba(texts)
        mps = mails_per_second(router.predict_logits, texts)
        variants[v] = {
            "mails_per_second": round(mps, 1),
            "vs_pipeline": round(mps / baseline, 2),
            "agreement_with_torch_fp32": float((probs.argmax(-1) == ref.argmax(-1)).mean()),
            "test_accuracy": float((probs.argmax(-1) == labels).mean()),
        }
        del router
    chosen = serving_router(model, load_settings(serve_backend="auto")).variant
    result = {
        "cpu": cpu_features(),
        "model": str(json.loads((model / "router.json").read_text()).get("base_model", model.name)),
        "data": a.data,
        "test_mails": len(texts),
        "gate": {
            v: {k: g[k] for k in ("agreement", "mean_score_diff", "refused") if k in g}
            for v, g in parity["candidates"].items()
        },
        "export_seconds": round(export_seconds, 1),
        "export_timings": parity["speed"]["mails_per_second"],
        "transformers_pipeline_mails_per_second": round(baseline, 1),
        "variants": variants,
        "served_with_auto": chosen,
        "versions": package_versions(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("gate", "transformers_pipeline_mails_per_second", "variants", "served_with_auto")},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
