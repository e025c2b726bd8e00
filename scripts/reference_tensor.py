#!/usr/bin/env python3
"""The two scikit-learn "tensor" test models, and their reference answers.

Both models are trained deterministically on datasets that ship inside the
scikit-learn wheel (no download), so any process can rebuild exactly the
estimator that scripts/build_test_models.py exported to ONNX:

  breast-cancer-risk   GradientBoostingClassifier on load_breast_cancer
                       (30 features; classes 0 = malignant, 1 = benign)
  digits-classifier    StandardScaler + LogisticRegression on load_digits
                       (8x8 images as 64 features, grey levels 0..16; classes 0..9)

The features are rounded to float32 before training, because the ONNX models
take a float32 input: the estimator and the graph then see the same numbers.
Each model is trained on a fixed stratified 75 % of its dataset.

Reads JSON on stdin, writes JSON on stdout:

    {"model": "breast-cancer-risk", "rows": [[30 numbers], ...]}
 -> {"probabilities": [[p0, p1], ...], "label": [1, ...]}     predict_proba, predict

    {"model": "digits-classifier", "sample": 3}
 -> {"rows": [[64 numbers], ...], "target": [0, 1, 2]}        the dataset's first rows
                                                              (float32 values) and labels

Rows are rounded to float32 before prediction, as the ONNX input would be.
"""
from __future__ import annotations

import json
import sys

import numpy as np

MODELS = ("breast-cancer-risk", "digits-classifier")
SEED = 0
TEST_SIZE = 0.25


def dataset(name: str):
    """(X float32 as float64, y int64) of a model's whole dataset."""
    from sklearn import datasets

    loaders = {"breast-cancer-risk": datasets.load_breast_cancer,
               "digits-classifier": datasets.load_digits}
    if name not in loaders:
        raise SystemExit(f"unknown model {name!r}; one of {', '.join(MODELS)}")
    X, y = loaders[name](return_X_y=True)
    return X.astype(np.float32).astype(np.float64), y.astype(np.int64)


def split(name: str):
    """The fixed train / held-out split: (X_train, X_test, y_train, y_test)."""
    from sklearn.model_selection import train_test_split

    X, y = dataset(name)
    return train_test_split(X, y, test_size=TEST_SIZE, random_state=SEED, stratify=y)


def estimator(name: str):
    """A fresh, unfitted estimator; every source of randomness is seeded."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "breast-cancer-risk":
        return GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=SEED)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=SEED))


def train(name: str):
    """(fitted estimator, X_test, y_test)."""
    X_train, X_test, y_train, y_test = split(name)
    return estimator(name).fit(X_train, y_train), X_test, y_test


def as_float32_rows(rows) -> np.ndarray:
    X = np.asarray(rows, dtype=np.float64)
    if X.ndim != 2:
        raise SystemExit("rows must be a list of lists of numbers")
    return X.astype(np.float32).astype(np.float64)


def answer(req: dict) -> dict:
    name = req.get("model")
    if "sample" in req:
        X, y = dataset(name)
        n = int(req["sample"])
        return {"rows": X[:n].tolist(), "target": y[:n].tolist()}
    if not req["rows"]:
        dataset(name)  # still refuses an unknown model name
        return {"probabilities": [], "label": []}
    model, _, _ = train(name)
    X = as_float32_rows(req["rows"])
    return {"probabilities": model.predict_proba(X).tolist(),
            "label": [int(v) for v in model.predict(X)]}


def main() -> int:
    json.dump(answer(json.load(sys.stdin)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
