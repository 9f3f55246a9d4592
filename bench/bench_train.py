#!/usr/bin/env python
"""Per-epoch training time of normcli's MLP against PyTorch (CPU) and scikit-learn.

Workload (defaults): 200,000 rows x 32 synthetic float32 features, 10 classes (overlapping
Gaussian blobs), hidden layers (256, 256), batch size 256, SGD with momentum 0.9, lr 0.01:

* normcli:  Linear -> ReLU -> BatchNorm1d (x2) -> Linear, ``normcli.nn.train_network``, twice:
            ``normcli-numpy`` (``kernels='numpy'``: one numpy operation at a time) and
            ``normcli-numba`` (``kernels='numba'``: the element-wise work in fused numba
            kernels, normcli[fast]; compiling/loading them happens before the first epoch and
            is shown in the notes, not in the epoch times)
* torch:    the same architecture and loop (randperm, index, zero_grad, backward, step),
            float32, ``torch.set_num_threads(<cores>)``
* sklearn:  ``MLPClassifier(solver='sgd', momentum=0.9, batch_size=256, hidden (256, 256))``,
            one ``partial_fit`` per epoch. It has no batch norm (and a float32 input).
* floor:    only the matrix products of normcli's epoch (per batch: the three forward
            products, the three weight gradients and the two input gradients, float32, same
            shapes, numpy's BLAS with its default threads): what no numpy network can beat.

Each framework runs in its own subprocess (so its peak RSS, ``ru_maxrss``, is its own), and the
runs are repeated ``--rounds`` times in rotating order, because a 2-core machine is noisy. Each
run trains one untimed warm-up epoch first, then ``--epochs`` timed ones; for each epoch it also
records the CPU time *other* processes used meanwhile (machine-wide busy time from /proc/stat
minus its own process CPU time). Epochs during which others kept more than
``--noise-threshold`` cores busy (default 0.25) are "noisy".

Reported: per framework the median epoch time over all epochs of all rounds (min and max too),
the median over quiet epochs and their count, the cores others used (median), peak RSS; then
the ratios normcli/torch, normcli/floor and normcli/sklearn for each normcli path, from the
quiet medians when every framework has quiet epochs (else from all epochs, and it says so).
Targets: normcli <= 0.70x torch, <= 1.6x the matmul floor, and faster than sklearn.

Usage:
    python bench/bench_train.py            # full: 200k rows, 3 epochs x 3 rounds
    python bench/bench_train.py --quick    # smoke run: 20k rows, 3 epochs, 1 round
    python bench/bench_train.py --json results.json --frameworks normcli,torch,floor

``--frameworks normcli`` means both normcli paths. A missing torch, scikit-learn or numba is
skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Benchmark the working tree this script is in, not whatever normcli is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_core import busy_cpu_s  # noqa: E402 - machine-wide busy CPU, measured one way for all benches

FRAMEWORKS = ("normcli-numpy", "normcli-numba", "torch", "sklearn", "floor")
NORMCLI = ("normcli-numpy", "normcli-numba")
FEATURES = 32
CLASSES = 10
HIDDEN = (256, 256)
SEED = 20240607


def make_data(rows: int):
    """Overlapping Gaussian blobs: 10 centres in 32-d plus unit noise, built in float32.

    Generated in place in float32 so that the data themselves (25 MB at 200k rows) and not a
    float64 intermediate set the floor of each worker's peak RSS.
    """
    import numpy as np

    rng = np.random.default_rng(SEED)
    centers = (rng.standard_normal((CLASSES, FEATURES)) * 0.5).astype(np.float32)
    y = rng.integers(0, CLASSES, rows)
    X = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    X += centers[y]
    return X, y.astype(np.int64)


class EpochClock:
    """Wall seconds of each epoch and the CPU seconds other processes used meanwhile.

    ``lap()`` ends an epoch and starts the next; the first lap (from construction) is the
    warm-up epoch and is not reported.
    """

    def __init__(self) -> None:
        self.laps: list[tuple[float, float | None]] = []
        self._mark = self._now()

    @staticmethod
    def _now() -> tuple[float, float | None, float]:
        return time.perf_counter(), busy_cpu_s(), time.process_time()

    def lap(self) -> None:
        now = self._now()
        (t0, busy0, own0), (t1, busy1, own1) = self._mark, now
        others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0))
        self.laps.append((t1 - t0, others))
        self._mark = self._now()

    def report(self) -> dict:
        timed = self.laps[1:]
        return {"epoch_seconds": [wall for wall, _ in timed], "others_cpu_s": [cpu for _, cpu in timed]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# -- workers (run in a subprocess each) ---------------------------------------------------------


def run_normcli(X, y, args, kernels: str) -> dict:
    from normcli.nn import NetworkConfig, TrainConfig, train_network

    try:
        from threadpoolctl import threadpool_info  # comes with scikit-learn
    except ImportError:
        threadpool_info = list  # type: ignore[assignment]

    config = TrainConfig(
        network=NetworkConfig(hidden=HIDDEN, bn_placement="after"),
        epochs=args.epochs + 1,  # the first is the warm-up epoch
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer="sgd",
        momentum=0.9,
        seed=0,
        kernels=kernels,
    )
    clock = EpochClock()
    result = train_network(X, y, None, None, config, on_epoch=lambda row: clock.lap())
    if result.kernels != kernels:
        raise RuntimeError(f"asked for the {kernels} kernels, {result.kernels} ran")
    if kernels == "numba":
        from normcli.nn.fused import NUMBA_VERSION

        note = f"numba {NUMBA_VERSION}, kernels ready in {result.warm_up_seconds:.2f} s"
    else:
        blas = [f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)"
                for i in threadpool_info() if i["user_api"] == "blas"]  # fmt: skip
        note = "numpy BLAS: " + (", ".join(blas) or "unknown")
    return clock.report() | {
        "final_train_loss": result.history[-1]["train_loss"] if result.history else None,
        "note": note,
    }


def run_torch(X, y, args) -> dict:
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    layers = []
    width = FEATURES
    for hidden in HIDDEN:
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.BatchNorm1d(hidden)]
        width = hidden
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    rows = X.shape[0]
    starts = list(range(0, rows, args.batch_size))
    if rows - starts[-1] == 1 and len(starts) > 1:  # merge a last batch of one row, like normcli
        starts.pop()
    bounds = list(zip(starts, starts[1:] + [rows]))
    loss_sum = 0.0
    model.train()
    clock = EpochClock()
    for _ in range(args.epochs + 1):
        order = torch.randperm(rows, generator=generator)
        loss_sum = torch.zeros(())
        for start, stop in bounds:
            index = order[start:stop]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X_t[index]), y_t[index])
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * (stop - start)
        final_loss = float(loss_sum) / rows
        clock.lap()
    return clock.report() | {
        "final_train_loss": final_loss,
        "note": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
    }


def run_sklearn(X, y, args) -> dict:
    import warnings

    import numpy as np
    import sklearn
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        solver="sgd",
        momentum=0.9,
        nesterovs_momentum=False,
        batch_size=args.batch_size,
        learning_rate_init=args.lr,
        alpha=0.0,
        shuffle=True,
        random_state=0,
    )
    classes = np.arange(CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clock = EpochClock()
        for _ in range(args.epochs + 1):
            model.partial_fit(X, y, classes=classes)
            clock.lap()
    return clock.report() | {
        "final_train_loss": float(model.loss_),
        "note": f"scikit-learn {sklearn.__version__}, no batch norm",
    }


def run_floor(X, y, args) -> dict:
    """The matrix products of normcli's epoch alone (see the module docstring)."""
    import numpy as np

    rng = np.random.default_rng(0)
    widths = (FEATURES, *HIDDEN, CLASSES)
    weights = [rng.standard_normal((o, i), dtype=np.float32) for i, o in zip(widths[:-1], widths[1:])]
    rows = X.shape[0]
    starts = list(range(0, rows, args.batch_size))
    if rows - starts[-1] == 1 and len(starts) > 1:
        starts.pop()
    bounds = list(zip(starts, starts[1:] + [rows]))
    order = rng.permutation(rows)
    clock = EpochClock()
    for _ in range(args.epochs + 1):
        for start, stop in bounds:
            x = X.take(order[start:stop], axis=0)  # inputs of each layer (values do not matter)
            inputs = [x]
            for W in weights[:-1]:
                inputs.append(inputs[-1] @ W.T)
            out = inputs[-1] @ weights[-1].T
            grad = out
            for index in range(len(weights) - 1, -1, -1):
                W = weights[index]
                _ = grad.T @ inputs[index]  # ∂L/∂W
                if index > 0:
                    grad = grad @ W  # ∂L/∂x
        clock.lap()
    return clock.report() | {"final_train_loss": None, "note": "matrix products only"}


WORKERS = {
    "normcli-numpy": lambda X, y, args: run_normcli(X, y, args, "numpy"),
    "normcli-numba": lambda X, y, args: run_normcli(X, y, args, "numba"),
    "torch": run_torch,
    "sklearn": run_sklearn,
    "floor": run_floor,
}
REQUIRES = {"normcli-numpy": "numpy", "normcli-numba": "numba", "torch": "torch", "sklearn": "sklearn",
            "floor": "numpy"}  # fmt: skip


def worker_main(args) -> None:
    X, y = make_data(args.rows)
    data_rss = peak_rss_mb()
    report = WORKERS[args.worker](X, y, args)
    report.update(peak_rss_mb=peak_rss_mb(), data_rss_mb=data_rss)
    print("RESULT " + json.dumps(report))


# -- driver -------------------------------------------------------------------------------------


def run_worker(framework: str, args) -> dict:
    command = [
        sys.executable, __file__, "--worker", framework, "--train-rows", str(args.rows),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{framework} worker failed:\n{done.stderr[-2000:]}")


def summarize(results: dict[str, list[dict]], noise_threshold: float) -> dict[str, dict]:
    """Per framework: medians over all epochs and over quiet ones (others' cores <= threshold)."""
    summary = {}
    for framework, runs in results.items():
        epochs = [(t, cpu) for run in runs for t, cpu in zip(run["epoch_seconds"], run["others_cpu_s"])]
        times = [t for t, _ in epochs]
        others = [cpu / t for t, cpu in epochs if cpu is not None]  # cores busy with others
        quiet = [t for t, cpu in epochs if cpu is None or cpu / t <= noise_threshold]
        summary[framework] = {
            "epochs": len(times),
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "quiet_epochs": len(quiet),
            "quiet_median_s": statistics.median(quiet) if quiet else None,
            "others_cores": statistics.median(others) if others else None,
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "data_rss_mb": max(run["data_rss_mb"] for run in runs),
            "final_train_loss": runs[-1]["final_train_loss"],
            "note": runs[-1]["note"],
        }
    return summary


def print_table(summary: dict[str, dict], args) -> None:
    print(
        f"\nPer-epoch training time: {args.rows:,} rows x {FEATURES} features, {CLASSES} classes, "
        f"hidden {HIDDEN}, batch {args.batch_size}, SGD momentum 0.9, lr {args.lr}"
    )
    coretype = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    print(f"cores: {os.cpu_count()}, OPENBLAS_CORETYPE={coretype}; quiet epoch: other processes "
          f"used <= {args.noise_threshold:g} cores; 'others' = their median cores over all epochs")  # fmt: skip
    header = f"{'framework':<14}{'epochs':>7}{'median s':>10}{'min s':>8}{'max s':>8}{'quiet':>7}"
    header += f"{'quiet med':>10}{'others':>8}{'peak RSS MB':>13}{'train loss':>12}  notes"
    print(header)
    print("-" * len(header))
    for framework, row in summary.items():
        loss, quiet, others = row["final_train_loss"], row["quiet_median_s"], row["others_cores"]
        print(
            f"{framework:<14}{row['epochs']:>7}{row['median_s']:>10.3f}{row['min_s']:>8.3f}"
            f"{row['max_s']:>8.3f}{row['quiet_epochs']:>7}{(f'{quiet:.3f}' if quiet else '-'):>10}"
            f"{(f'{others:.2f}' if others is not None else '?'):>8}{row['peak_rss_mb']:>13.0f}"
            f"{(f'{loss:.4f}' if loss is not None else '-'):>12}  {row['note']}"
        )
    quiet = all(row["quiet_median_s"] is not None for row in summary.values())
    key = "quiet_median_s" if quiet else "median_s"
    print("\nratios of " + ("medians over quiet epochs" if quiet else
                            "medians over ALL epochs (some framework had no quiet epoch: the machine was busy)"))  # fmt: skip
    targets = [("torch", "<=", 0.70), ("floor", "<=", 1.6), ("sklearn", "<", 1.0)]
    for ours in (name for name in NORMCLI if name in summary):
        for baseline, relation, target in targets:
            if baseline not in summary:
                continue
            ratio = summary[ours][key] / summary[baseline][key]
            met = ratio <= target if relation == "<=" else ratio < target
            print(f"{ours} / {baseline:<7} = {ratio:.2f}  (target {relation} {target:.2f}: "
                  f"{'met' if met else 'NOT met'})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20k rows, 1 round")
    parser.add_argument("--train-rows", dest="rows", type=int, default=None, help="rows (default 200,000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--rounds", type=int, default=None, help="runs per framework")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help="comma-separated; 'normcli' = normcli-numpy,normcli-numba")  # fmt: skip
    parser.add_argument("--noise-threshold", type=float, default=0.25,
                        help="an epoch is quiet if other processes used at most this many cores (-1: all are)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows is None:
        args.rows = 20_000 if args.quick else 200_000
    if args.worker:
        worker_main(args)
        return 0
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)

    frameworks = []
    names = [part for name in args.frameworks.split(",") for part in (NORMCLI if name == "normcli" else [name])]
    for name in names:
        if name not in FRAMEWORKS:
            parser.error(f"unknown framework {name!r} (choose from normcli, {', '.join(FRAMEWORKS)})")
        if importlib.util.find_spec(REQUIRES[name]) is None:
            print(f"note: {name} is not installed; skipping it")
            continue
        frameworks.append(name)
    results: dict[str, list[dict]] = {name: [] for name in frameworks}
    for round_index in range(rounds):
        shift = round_index % len(frameworks)
        for name in frameworks[shift:] + frameworks[:shift]:
            print(f"round {round_index + 1}/{rounds}: {name} ...", flush=True)
            try:
                results[name].append(run_worker(name, args))
            except RuntimeError as exc:
                print(f"note: {exc}")
    results = {name: runs for name, runs in results.items() if runs}
    summary = summarize(results, args.noise_threshold if args.noise_threshold >= 0 else float("inf"))
    print_table(summary, args)
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "summary": summary}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
