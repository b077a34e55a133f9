"""The baseline server for bench/serve.py: the plain way, one `transformers.pipeline` call per request.

It cleans the text like emailrouter (so both score the same input) but has no batching, no ONNX, no limits.
"""

import json
import os
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

from emailrouter.text import clean_email

model = Path(os.environ["BASELINE_MODEL"])
max_length = json.loads((model / "router.json").read_text())["max_length"]  # the same token budget as emailrouter
pipe = pipeline("text-classification", model=str(model), device=-1)
app = FastAPI()


class Email(BaseModel):
    subject: str | None = None
    body: str


@app.get("/ready")
def ready():
    return {"status": "ready"}


@app.post("/predict")
def predict(email: Email):
    out = pipe(clean_email(email.subject, email.body), truncation=True, max_length=max_length)[0]
    return {"queue": out["label"], "score": out["score"]}
