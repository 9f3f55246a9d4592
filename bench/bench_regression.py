#!/usr/bin/env python
"""Held-out R² of ``normcli train`` on small regression tables, against scikit-learn.

For each table and seed: 80 % of the rows train, 20 % are held out (never seen by anything).

* normcli:  ``normcli.learn.train.train`` on the 80 % with a given configuration (by default the
            command's defaults: it splits its own validation rows off those 80 %), then
            ``predict`` on the held-out rows;
* sklearn:  ``StandardScaler`` + ``MLPRegressor(max_iter=1000)`` on the 80 % (numbers; text
            columns one-hot; missing numbers imputed with the training mean);
* ridge:    the same preprocessing + ``RidgeCV`` (alphas 1e-3..1e3).

Tables: scikit-learn's bundled ``load_diabetes`` (no download), plus any CSV given as
``PATH:TARGET`` (e.g. tables exported from an offline copy of R's datasets). Columns named like
row ids (``rownames``, ``id``) are left out of the scikit-learn features; normcli chooses its own.

Usage:
    python bench/bench_regression.py                                   # diabetes only
    python bench/bench_regression.py boston.csv:medv auto.csv:mpg --seeds 5
    python bench/bench_regression.py --configs default,adam            # compare settings
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the working tree's normcli

CONFIGS = {
    # name: (TrainConfig keywords, NetworkConfig keywords); empty = normcli train's defaults
    "default": ({}, {}),
    "old-sgd20": (dict(optimizer="sgd", lr=0.01, epochs=20, batch_size=64, patience=None, weight_decay=0.0), {}),
    "adam-es": (dict(optimizer="adam", lr=1e-3, epochs=300, batch_size=32, patience=20), {}),
    "adam-es-3e3": (dict(optimizer="adam", lr=3e-3, epochs=300, batch_size=32, patience=20), {}),
    "adam-es-wd": (dict(optimizer="adam", lr=1e-3, epochs=300, batch_size=32, patience=20, weight_decay=1e-3), {}),
    "sgd-es": (dict(optimizer="sgd", lr=0.01, epochs=300, batch_size=32, patience=20), {}),
    "adam-es-nobn": (dict(optimizer="adam", lr=1e-3, epochs=300, batch_size=32, patience=20), {"bn_placement": "none"}),
    "adam-es-drop": (dict(optimizer="adam", lr=1e-3, epochs=300, batch_size=32, patience=20), {"dropout": 0.1}),
    "adam-es-b64": (dict(optimizer="adam", lr=1e-3, epochs=300, batch_size=64, patience=20), {}),
    "adam-es-3e3-b64": (dict(optimizer="adam", lr=3e-3, epochs=300, batch_size=64, patience=20), {}),
    "adam-es-before": (dict(optimizer="adam", lr=1e-3, epochs=300, batch_size=32, patience=20), {"bn_placement": "before"}),
    "adam-es-p40": (dict(optimizer="adam", lr=1e-3, epochs=500, batch_size=32, patience=40), {}),
    "adam-es-mom01-b128": (dict(optimizer="adam", lr=3e-3, epochs=300, batch_size=128, patience=20), {}),
    "adam-es-3e3-drop": (dict(optimizer="adam", lr=3e-3, epochs=300, batch_size=32, patience=20), {"dropout": 0.1}),
    "adam-es-3e3-wd": (dict(optimizer="adam", lr=3e-3, epochs=300, batch_size=32, patience=20, weight_decay=1e-2), {}),
}


def load_tables(specs: list[str]):
    import polars as pl
    from sklearn.datasets import load_diabetes

    tables = []
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    tables.append(("diabetes", pl.from_pandas(diabetes), "target"))
    for spec in specs:
        path, _, target = spec.rpartition(":")
        tables.append((Path(path).stem, pl.read_csv(path, null_values=["NA", ""], infer_schema_length=10000), target))
    return tables


def sklearn_matrices(train, test, target):
    import numpy as np
    import polars as pl

    from normcli.learn.columns import ID_NAME

    columns = [c for c in train.columns if c != target and not ID_NAME.search(c) and c.lower() != "name"]
    numeric = [c for c in columns if train.schema[c].is_numeric()]
    text = [c for c in columns if train.schema[c] in (pl.String, pl.Boolean)]
    means = {c: train[c].cast(pl.Float64).mean() for c in numeric}

    def matrix(frame):
        parts = [frame.select([pl.col(c).cast(pl.Float64).fill_null(means[c] or 0.0) for c in numeric]).to_numpy()]
        for c in text:
            levels = sorted(v for v in train[c].cast(pl.String).unique().to_list() if v is not None)
            values = frame[c].cast(pl.String).to_numpy()
            parts.append(np.stack([(values == v).astype(float) for v in levels], axis=1))
        return np.hstack(parts)

    return matrix(train), matrix(test)


def r2(truth, predicted) -> float:
    import numpy as np

    return float(1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2))


def run(tables, configs, seeds: int) -> dict:
    import numpy as np
    import polars as pl
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from normcli.learn.dataset import DataOptions
    from normcli.learn.predict import predict
    from normcli.learn.train import default_config, train
    from normcli.nn import TrainConfig

    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, frame, target in tables:
            frame = frame.filter(pl.col(target).is_not_null())
            y_all = frame[target].cast(pl.Float64).to_numpy()
            for seed in range(seeds):
                order = np.random.default_rng([seed, 99]).permutation(frame.height)
                cut = int(round(0.8 * frame.height))
                train_frame, test_frame = frame[order[:cut]], frame[order[cut:]]
                y_train, y_test = y_all[order[:cut]], y_all[order[cut:]]
                train_path, test_path = Path(folder) / "train.csv", Path(folder) / "test.csv"
                train_frame.write_csv(train_path)
                test_frame.write_csv(test_path)
                for config_name in configs:
                    train_kw, network_kw = CONFIGS[config_name]
                    base = default_config(seed)
                    network = base.network.__class__(**{**base.network.__dict__, **network_kw})
                    config = TrainConfig(**{**base.__dict__, "network": network, **train_kw})
                    model = Path(folder) / "m.npz"
                    train([str(train_path)], DataOptions(target=target, task="regression", seed=seed), config, model_path=str(model))
                    out = Path(folder) / "p.csv"
                    predict([str(test_path)], model=str(model), output=str(out), keep="none")
                    predicted = pl.read_csv(out)[f"predicted_{target}"].to_numpy()
                    results.setdefault((name, f"normcli:{config_name}"), []).append(r2(y_test, predicted))
                X_train, X_test = sklearn_matrices(train_frame, test_frame, target)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mlp = make_pipeline(StandardScaler(), MLPRegressor(max_iter=1000, random_state=seed))
                    mlp.fit(X_train, y_train)
                results.setdefault((name, "sklearn MLP"), []).append(r2(y_test, mlp.predict(X_test)))
                ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
                ridge.fit(X_train, y_train)
                results.setdefault((name, "ridge"), []).append(r2(y_test, ridge.predict(X_test)))
            print(f"done: {name} ({frame.height} rows)", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tables", nargs="*", help="PATH:TARGET of more CSV tables")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--configs", default="default", help=f"comma-separated: {', '.join(CONFIGS)}")
    args = parser.parse_args()
    configs = args.configs.split(",")
    for name in configs:
        if name not in CONFIGS:
            parser.error(f"unknown config {name!r}")
    tables = load_tables(args.tables)
    results = run(tables, configs, args.seeds)
    methods = [f"normcli:{c}" for c in configs] + ["sklearn MLP", "ridge"]
    print(f"\nheld-out R², mean over {args.seeds} splits (80 % train / 20 % test)")
    print(f"{'table':<12}" + "".join(f"{m:>18}" for m in methods))
    for name, _, _ in tables:
        print(f"{name:<12}" + "".join(f"{statistics.mean(results[(name, m)]):>18.3f}" for m in methods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
