"""Golden data for gradus-norm's `pca_whiten`, from scikit-learn.

Run: `python3 generate.py > pca_whiten.json` (scikit-learn 1.9.1, numpy; seed fixed below).
Each case: a training split `train` (n x f, correlated features of very different scales), a
held-out split `test`, and sklearn `PCA(n_components=k, whiten=True, svd_solver="full")`
fitted on `train`: `mean`, `components` (k x f, sklearn's sign convention: the largest-magnitude
entry of each component positive), `explained_variance` (k), `train_out` / `test_out`
(transform) and `inverse_of_test_out` (inverse_transform of test_out). sklearn has no ZCA; the
ZCA case is numpy: W = V diag(1/sqrt(lambda + eps)) V^T with V, lambda from the same PCA.
"""
import json

import numpy as np
import sklearn
from sklearn.decomposition import PCA

rng = np.random.default_rng(20261127)


def data(n, f):
    mixing = rng.normal(size=(f, f)) * rng.uniform(0.1, 5.0, size=f)
    return rng.normal(size=(n, f)) @ mixing + rng.uniform(-3, 3, size=f)


cases = []
for name, n, f, k in [("full_rank", 40, 5, None), ("three_of_six", 30, 6, 3)]:
    train, test = data(n, f), data(7, f)
    pca = PCA(n_components=k, whiten=True, svd_solver="full").fit(train)
    test_out = pca.transform(test)
    cases.append({
        "name": name,
        "n_components": k,
        "train": train.tolist(),
        "test": test.tolist(),
        "mean": pca.mean_.tolist(),
        "components": pca.components_.tolist(),
        "explained_variance": pca.explained_variance_.tolist(),
        "train_out": pca.transform(train).tolist(),
        "test_out": test_out.tolist(),
        "inverse_of_test_out": pca.inverse_transform(test_out).tolist(),
    })

train, test = data(50, 4), data(6, 4)
eps = 0.1
pca = PCA(whiten=False, svd_solver="full").fit(train)
v, lam = pca.components_.T, pca.explained_variance_
zca = v @ np.diag(1.0 / np.sqrt(lam + eps)) @ v.T
cases.append({
    "name": "zca_eps",
    "zca": True,
    "eps": eps,
    "train": train.tolist(),
    "test": test.tolist(),
    "mean": pca.mean_.tolist(),
    "test_out": ((test - pca.mean_) @ zca).tolist(),
})

print(json.dumps({"generator": f"scikit-learn {sklearn.__version__}, numpy {np.__version__}",
                  "cases": cases}, indent=1))
