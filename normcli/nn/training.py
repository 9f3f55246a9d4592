"""Mini-batch training of an :class:`~normcli.nn.MLP` on numpy arrays.

No files and no data frames here: callers pass feature matrices and targets (already split and,
where wanted, normalized), get back a :class:`TrainResult`.

Mini-batches: each epoch shuffles the rows with ``numpy.random.default_rng([seed, 2])`` and cuts
them into consecutive batches of ``batch_size``. If that leaves a last batch of a single row,
the row is **merged into the previous batch** (which then has ``batch_size + 1`` rows): batch
norm cannot normalize one row, and no row is dropped. Everything is seeded, so the same seed
and data give a bit-identical history and weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from normcli.errors import DataError, UsageError
from normcli.nn.layers import SettingError
from normcli.nn.losses import Loss, MSELoss, SoftmaxCrossEntropy
from normcli.nn.model import MLP, TASKS, MLPConfig, NetworkConfig
from normcli.nn.optim import SCHEDULES, SGD, Adam, Optimizer, make_schedule

__all__ = [
    "KERNELS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "train_network",
    "batch_bounds",
    "evaluate",
    "choose_kernels",
    "numba_saving_estimate",
]

OPTIMIZERS = ("sgd", "adam")
KERNELS = ("auto", "numpy", "numba")

AUTO_NUMBA_MIN_SAVING = 2.0
"""``kernels='auto'`` uses numba when it expects to save at least this many seconds over the
run (:func:`numba_saving_estimate`): about 3× what importing numba and loading its cached
kernels costs (~0.7 s); the first run after an install also compiles them (~5 s, then cached)."""

# What the numba kernels save, measured on a 2-core Xeon (bench/bench_train.py and batch-32
# runs): numpy's per-operation overhead, per hidden block and batch, and the passes over the
# data, per row and hidden unit.
_SAVED_PER_BLOCK_AND_BATCH = 50e-6
_SAVED_PER_ROW_AND_UNIT = 3e-9

HistoryRow = dict[str, Any]
EpochCallback = Callable[[HistoryRow], None]


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how. Invalid values raise :class:`~normcli.nn.layers.SettingError`.

    Network: ``network``, a :class:`~normcli.nn.model.NetworkConfig` (hidden sizes, activation,
    batch-norm placement, momentum and ε, dropout, dtype).

    Optimization: ``optimizer`` 'sgd' (with ``momentum``, ``nesterov``) or 'adam'
    (``adam_betas``, ``adam_eps``); ``lr``; ``weight_decay`` (L2 added to the gradient, as
    PyTorch); ``schedule`` 'none', 'step' (×``lr_gamma`` every ``lr_step_size`` epochs, default
    a third of ``epochs``) or 'cosine' (to 0 over ``epochs``).

    Stopping: ``epochs``; ``patience`` = early stopping after that many epochs without the
    validation loss improving by more than ``min_delta`` (None = off; the best weights are then
    restored); ``target_loss`` = report the first epoch whose validation loss is ≤ it.

    Targets: ``task`` 'classification' (integer classes 0..K−1, K = ``num_classes`` or inferred
    from the labels) or 'regression' (float targets, already scaled by the caller;
    ``y_center``/``y_scale`` — scalars or one per output — undo that scaling so ``val_rmse`` is
    in original units: original = scaled · y_scale + y_center).

    ``seed`` seeds the weights and dropout (see :class:`~normcli.nn.model.MLPConfig`) and the
    shuffling of the batches.

    Speed: ``kernels`` 'numpy' (the layers, one numpy operation at a time), 'numba' (the
    element-wise work of each ReLU/LeakyReLU block, the softmax cross-entropy and the optimizer
    in fused compiled kernels, :mod:`normcli.nn.fused`; needs ``pip install 'normcli[fast]'``)
    or 'auto' (numba when it is installed, the activation is relu or leaky_relu, and the run
    is big enough to repay loading it: :func:`numba_saving_estimate` ≥
    :data:`AUTO_NUMBA_MIN_SAVING` seconds).
    Both compute the same equations; results agree within float rounding (sums over the batch
    are added in another order), and each is bit-for-bit reproducible on its own.
    ``TrainResult.kernels`` says which ran.
    """

    task: str = "classification"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    lr_step_size: int | None = None
    lr_gamma: float = 0.1
    patience: int | None = None
    min_delta: float = 0.0
    seed: int = 0
    target_loss: float | None = None
    num_classes: int | None = None
    y_center: float | tuple[float, ...] = 0.0
    y_scale: float | tuple[float, ...] = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    kernels: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.network, NetworkConfig):
            raise SettingError(f"network must be a NetworkConfig, got {type(self.network).__name__}")
        object.__setattr__(self, "network", self.network.network())
        for name in ("y_center", "y_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)):
                object.__setattr__(self, name, tuple(float(v) for v in np.ravel(value)))
        problems = self._problems()
        if problems:
            raise SettingError("invalid training settings: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        def choice(name: str, allowed: Sequence[str]) -> str | None:
            value = getattr(self, name)
            if value not in allowed:
                return f"{name} must be one of {', '.join(allowed)} (got {value!r})"
            return None

        problems = [
            choice("task", TASKS),
            choice("optimizer", OPTIMIZERS),
            choice("schedule", SCHEDULES),
            choice("kernels", KERNELS),
        ]
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1 (got {self.epochs})"),
            (self.batch_size >= 2, f"batch_size must be >= 2 (got {self.batch_size})"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0 (got {self.lr})"),
            (0.0 <= self.momentum < 1.0, f"momentum must be in [0, 1) (got {self.momentum})"),
            (
                not (self.nesterov and (self.optimizer != "sgd" or self.momentum == 0.0)),
                "nesterov needs the sgd optimizer with momentum > 0",
            ),
            (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0.0,
                f"weight_decay must be >= 0 (got {self.weight_decay})",
            ),
            (
                self.lr_step_size is None or self.lr_step_size >= 1,
                f"lr_step_size must be >= 1 (got {self.lr_step_size})",
            ),
            (0.0 < self.lr_gamma <= 1.0, f"lr_gamma must be in (0, 1] (got {self.lr_gamma})"),
            (
                self.patience is None or self.patience >= 1,
                f"patience must be >= 1 (got {self.patience})",
            ),
            (self.min_delta >= 0.0, f"min_delta must be >= 0 (got {self.min_delta})"),
            (self.seed >= 0, f"seed must be >= 0 (got {self.seed})"),
            (
                self.num_classes is None or self.num_classes >= 2,
                f"num_classes must be >= 2 (got {self.num_classes})",
            ),
            (
                all(s != 0 and math.isfinite(s) for s in np.ravel(self.y_scale)),
                f"y_scale must be finite and non-zero (got {self.y_scale})",
            ),
            (
                len(self.adam_betas) == 2 and all(0.0 <= b < 1.0 for b in self.adam_betas),
                f"adam_betas must be two values in [0, 1) (got {self.adam_betas})",
            ),
            (self.adam_eps >= 0.0, f"adam_eps must be >= 0 (got {self.adam_eps})"),
        ]
        problems += [message for ok, message in checks if not ok]
        return [p for p in problems if p]

    def with_network(self, **changes: Any) -> TrainConfig:
        """A copy with some network fields changed: ``config.with_network(bn_placement="none")``."""
        return replace(self, network=replace(self.network, **changes))

    def model_config(self, input_dim: int, output_dim: int) -> MLPConfig:
        """The :class:`MLPConfig` of the network this configuration trains."""
        return MLPConfig.of(self.network, input_dim, output_dim, self.task, self.seed)


@dataclass
class TrainResult:
    """The outcome of :func:`train_network`.

    ``history`` has one dict per completed epoch (never NaN or inf), with keys ``epoch``
    (1-based), ``lr``, ``train_loss`` (mean over the epoch's batches, weighted by their size, in
    training mode), ``val_loss`` (eval mode; None without validation data),
    ``grad_norm_first_layer`` (mean over batches of ‖∂L/∂W‖₂ of the first Linear), and
    ``val_accuracy`` (classification) or ``val_rmse`` (original units) and ``val_r2``
    (regression). Losses of a regression are MSE of the *scaled* targets.

    ``initial_val_loss`` is the validation loss of the initial weights (epoch 0; None without
    validation data, or if it is not finite).

    ``model`` holds the weights of epoch ``model_epoch``: the best validation loss when early
    stopping is on, the last completed epoch otherwise (also after a divergence: the weights
    that diverged are discarded; 0 = the initial weights, if the first epoch diverged).

    ``kernels`` is what ran the training steps ('numpy' or 'numba', see ``TrainConfig.kernels``)
    and ``warm_up_seconds`` the time spent before the first epoch choosing them (importing
    numba, loading or compiling its kernels); ``epoch_seconds`` never include it.
    """

    model: MLP
    config: TrainConfig
    history: list[HistoryRow] = field(default_factory=list)
    diverged: bool = False
    divergence_message: str | None = None
    epochs_to_target: int | None = None
    best_epoch: int | None = None
    model_epoch: int = 0
    stopped_early: bool = False
    num_classes: int | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    initial_val_loss: float | None = None
    kernels: str = "numpy"
    warm_up_seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        """Number of completed epochs (recorded in ``history``)."""
        return len(self.history)

    @property
    def final(self) -> HistoryRow | None:
        """The history row of the epoch whose weights ``model`` holds (None if none)."""
        return self.history[self.model_epoch - 1] if self.model_epoch else None


# -- data checks -------------------------------------------------------------------------------


def _features(X: Any, name: str, dtype: np.dtype) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (rows x features), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise DataError(
            f"{name} contains NaN or infinite values (or values too large for {dtype.name})",
            hint="impute or drop missing values before training",
        )
    return X


def _class_targets(y: Any, name: str, rows: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != rows:
        raise DataError(f"{name} must be a 1-D array of {rows} class indices, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise DataError(f"{name} must hold integer class indices 0..K-1, got fractions/NaN")
    elif y.dtype.kind not in "biu":
        raise DataError(f"{name} must hold integer class indices 0..K-1, got dtype {y.dtype}")
    y = y.astype(np.intp)
    if rows and y.min() < 0:
        raise DataError(f"{name} has a negative class index ({y.min()})")
    return y


def _regression_targets(y: Any, name: str, rows: int, dtype: np.dtype) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != rows:
        raise DataError(f"{name} must have {rows} rows (1-D or 2-D), got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {y.dtype}")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(y).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return y


def batch_bounds(rows: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of consecutive batches over ``rows`` rows.

    A last batch of exactly one row is merged into the one before it.
    """
    bounds = [(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        (start, _), (_, stop) = bounds[-2], bounds[-1]
        bounds[-2:] = [(start, stop)]
    return bounds


def choose_kernels(config: TrainConfig, rows: int) -> str:
    """'numpy' or 'numba': what :func:`train_network` runs for ``rows`` training rows.

    See ``TrainConfig.kernels``. 'numba' without numba installed is a
    :class:`~normcli.errors.UsageError`; 'auto' then quietly means 'numpy'.
    """
    if config.kernels == "numpy":
        return "numpy"
    if config.kernels == "auto" and numba_saving_estimate(config, rows) < AUTO_NUMBA_MIN_SAVING:
        return "numpy"
    try:
        import normcli.nn.fused  # noqa: F401  (imports numba)
    except ImportError as exc:
        if config.kernels == "numba":
            raise UsageError(
                f"the numba kernels need numba, which cannot be imported ({exc})",
                hint="pip install 'normcli[fast]', or use the numpy kernels",
            ) from None
        return "numpy"
    return "numba"


def numba_saving_estimate(config: TrainConfig, rows: int) -> float:
    """Seconds the numba kernels would save over ``config.epochs`` epochs of ``rows`` rows.

    0 unless the activation is relu or leaky_relu (the blocks that are fused). Otherwise
    epochs × (batches × hidden layers × 50 µs + rows × hidden units × 3 ns): numpy's overhead per
    operation, then its extra passes over the data. Early stopping may end a run sooner.
    """
    network = config.network
    if network.activation not in ("relu", "leaky_relu") or not network.hidden:
        return 0.0
    batches = -(-rows // config.batch_size)
    per_epoch = (batches * len(network.hidden) * _SAVED_PER_BLOCK_AND_BATCH
                 + rows * sum(network.hidden) * _SAVED_PER_ROW_AND_UNIT)  # fmt: skip
    return config.epochs * per_epoch


def _make_optimizer(
    config: TrainConfig, params: list[tuple[np.ndarray, np.ndarray]], kernels: str = "numpy"
) -> Optimizer:
    sgd, adam = SGD, Adam
    if kernels == "numba":
        from normcli.nn import fused

        sgd, adam = fused.FusedSGD, fused.FusedAdam
    if config.optimizer == "adam":
        return adam(params, config.lr, config.adam_betas, config.adam_eps, config.weight_decay)
    return sgd(params, config.lr, config.momentum, config.nesterov, config.weight_decay)


# -- evaluation --------------------------------------------------------------------------------


def evaluate(
    model: MLP,
    X: np.ndarray,
    y: np.ndarray,
    y_center: float | Sequence[float] = 0.0,
    y_scale: float | Sequence[float] = 1.0,
) -> dict[str, float]:
    """Eval-mode loss and metrics of ``model`` on (X, y).

    Classification: ``loss`` (mean cross-entropy) and ``accuracy``. Regression: ``loss`` (MSE
    in the scaled units the model was trained on), ``rmse`` in original units
    (scaled · y_scale + y_center) and ``r2`` (R², averaged over outputs; scale-invariant; 1.0
    for a perfect fit of a constant target, else 0.0 there, like scikit-learn).
    Values may be NaN/inf if the model has diverged.
    """
    output = model.output(X)
    if model.config.task == "classification":
        losses = SoftmaxCrossEntropy().per_sample(output, y)
        return {
            "loss": float(losses.sum(dtype=np.float64) / len(y)),
            "accuracy": float(np.mean(output.argmax(axis=1) == y)),
        }
    target = y[:, None] if y.ndim == 1 else y
    diff = output.astype(np.float64) - target
    mse_per_output = np.mean(diff * diff, axis=0)
    scale = np.broadcast_to(np.abs(np.asarray(y_scale, dtype=np.float64)), mse_per_output.shape)
    total = target.astype(np.float64) - target.mean(axis=0, dtype=np.float64)
    ss_total = np.sum(total * total, axis=0)
    ss_residual = mse_per_output * len(target)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(
            ss_total > 0,
            1.0 - ss_residual / np.where(ss_total > 0, ss_total, 1.0),
            np.where(ss_residual == 0, 1.0, 0.0),
        )
    return {
        "loss": float(np.mean(mse_per_output)),
        "rmse": float(np.sqrt(np.mean(mse_per_output * scale * scale))),
        "r2": float(np.mean(r2)),
    }


# -- training ----------------------------------------------------------------------------------


def _describe_nonfinite(values: np.ndarray | float) -> str:
    return "NaN" if np.isnan(values).any() else "infinite"


def _norm(array: np.ndarray) -> float:
    flat = array.ravel()
    squared = float(np.dot(flat, flat))
    if not math.isfinite(squared):  # float32 overflow of a finite gradient: redo in float64
        wide = flat.astype(np.float64)
        squared = float(np.dot(wide, wide))
    return math.sqrt(squared)


def _divergence_message(epoch: int, where: str, what: str, lr: float) -> str:
    return (
        f"training diverged in epoch {epoch}{where}: {what} (learning rate {lr:g})"
    )


@dataclass
class _Data:
    """Training/validation arrays checked and cast, with what they imply about the network."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    output_dim: int
    num_classes: int | None
    loss_fn: Loss


def _prepare_data(
    X_train: Any, y_train: Any, X_val: Any, y_val: Any, config: TrainConfig
) -> _Data:
    dtype = np.dtype(config.network.dtype)
    has_val = X_val is not None or y_val is not None
    if has_val and (X_val is None or y_val is None):
        raise UsageError("validation data needs both X_val and y_val")
    if config.patience is not None and not has_val:
        raise UsageError("early stopping (patience) needs validation data")
    X_train = _features(X_train, "training features", dtype)
    rows, input_dim = X_train.shape
    if rows < 2:
        raise DataError(f"training needs at least 2 rows, got {rows}")
    if has_val:
        X_val = _features(X_val, "validation features", dtype)
        if X_val.shape[0] == 0:
            raise DataError("the validation set is empty", hint="pass None for no validation")
        if X_val.shape[1] != input_dim:
            raise DataError(
                f"validation features have {X_val.shape[1]} columns, training has {input_dim}"
            )
    if config.task == "classification":
        y_train = _class_targets(y_train, "training targets", rows)
        seen = int(y_train.max()) + 1
        if has_val:
            y_val = _class_targets(y_val, "validation targets", X_val.shape[0])
            seen = max(seen, int(y_val.max()) + 1)
        num_classes = config.num_classes if config.num_classes is not None else max(seen, 2)
        if seen > num_classes:
            raise DataError(f"targets have class index {seen - 1}, but num_classes={num_classes}")
        loss_fn = SoftmaxCrossEntropy()
        return _Data(X_train, y_train, X_val, y_val, num_classes, num_classes, loss_fn)
    y_train = _regression_targets(y_train, "training targets", rows, dtype)
    if has_val:
        y_val = _regression_targets(y_val, "validation targets", X_val.shape[0], dtype)
        if y_val.shape[1] != y_train.shape[1]:
            raise DataError("validation and training targets have different widths")
    output_dim = y_train.shape[1]
    for name in ("y_center", "y_scale"):
        size = np.size(getattr(config, name))
        if size not in (1, output_dim):
            raise UsageError(f"{name} needs 1 or {output_dim} values, got {size}")
    return _Data(X_train, y_train, X_val, y_val, output_dim, None, MSELoss())


@dataclass
class _EpochTotals:
    loss_sum: float = 0.0  # Σ batch loss · batch rows
    grad_norm_sum: float = 0.0  # Σ over batches of ‖∂L/∂W₁‖
    failure: str | None = None  # divergence message, if the epoch could not finish


def _train_one_epoch(
    model: MLP,
    optimizer: Optimizer,
    data: _Data,
    order: np.ndarray,
    bounds: list[tuple[int, int]],
    epoch: int,
) -> _EpochTotals:
    """One pass over the shuffled batches; stops at the first non-finite loss or gradient.

    The gradients are checked after the optimizer's step (a fused optimizer checks them during
    its pass): when they are not finite, the caller discards this epoch's weights anyway.
    """
    totals = _EpochTotals()
    loss_fn = data.loss_fn
    flat_grads = model.flat_parameters()[1]
    first_grad = model.first_linear.dW
    for batch, (start, stop) in enumerate(bounds, 1):
        index = order[start:stop]
        output = model.forward(data.X_train.take(index, axis=0), training=True)
        loss = loss_fn.forward(output, data.y_train.take(index, axis=0))
        problem = None
        if not math.isfinite(loss):
            problem = f"the loss became {_describe_nonfinite(loss)}"
        else:
            model.backward(loss_fn.backward())
            optimizer.step()
            if not optimizer.gradients_finite():
                problem = f"a gradient became {_describe_nonfinite(flat_grads)}"
        if problem is not None:
            where = f", batch {batch} of {len(bounds)}"
            totals.failure = _divergence_message(epoch, where, problem, optimizer.lr)
            return totals
        totals.grad_norm_sum += _norm(first_grad)
        totals.loss_sum += loss * (stop - start)
    return totals


def train_network(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train an MLP on (X_train, y_train), evaluating on (X_val, y_val) after every epoch.

    ``X_*`` are (rows, features) numeric arrays, cast once to ``config.network.dtype``. ``y_*`` are
    integer class indices (classification) or float targets (regression, (rows,) or
    (rows, outputs)). Validation data may be None (then no val metrics, no early stopping,
    and ``epochs_to_target`` uses the training loss). ``on_epoch`` is called with each history
    row as soon as the epoch ends.

    Divergence: when a batch loss or any gradient is NaN/inf, training stops at once; the
    result says ``diverged=True`` with a message naming the epoch and batch, ``history`` holds
    only the completed epochs and ``model`` their last weights. numpy's overflow warnings are
    silenced meanwhile: divergence is reported this way instead.

    Bad data raise :class:`~normcli.errors.DataError`; bad settings
    :class:`~normcli.errors.UsageError`.
    """
    config = config if config is not None else TrainConfig()
    data = _prepare_data(X_train, y_train, X_val, y_val, config)
    rows, input_dim = data.X_train.shape
    has_val = data.X_val is not None

    model = MLP(config.model_config(input_dim, data.output_dim))
    started = time.perf_counter()
    kernels = choose_kernels(config, rows)  # imports numba if it chooses it
    optimizer = _make_optimizer(config, [model.flat_parameters()], kernels)
    if kernels == "numba":
        from normcli.nn import fused

        model.use_kernels("numba")
        if isinstance(data.loss_fn, SoftmaxCrossEntropy):
            data.loss_fn = fused.FusedSoftmaxCrossEntropy()
        fused.warm_up(model, data.loss_fn, optimizer)
    schedule = make_schedule(
        config.schedule, config.lr, config.epochs, config.lr_step_size, config.lr_gamma
    )
    shuffle_rng = np.random.default_rng([config.seed, 2])
    bounds = batch_bounds(rows, config.batch_size)
    result = TrainResult(model=model, config=config, num_classes=data.num_classes, kernels=kernels)
    result.warm_up_seconds = time.perf_counter() - started
    last_good_state = model.state_dict()
    best_state: dict[str, np.ndarray] | None = None
    best_loss = math.inf
    if has_val:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            initial = evaluate(model, data.X_val, data.y_val)["loss"]
        result.initial_val_loss = initial if math.isfinite(initial) else None

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        lr = optimizer.lr = schedule.lr_at(epoch - 1)
        order = shuffle_rng.permutation(rows)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            totals = _train_one_epoch(model, optimizer, data, order, bounds, epoch)
            metrics = (
                evaluate(model, data.X_val, data.y_val, config.y_center, config.y_scale)
                if has_val and totals.failure is None
                else {}
            )
        row: HistoryRow = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": totals.loss_sum / rows,
            "val_loss": metrics.pop("loss", None),
            "grad_norm_first_layer": totals.grad_norm_sum / len(bounds),
        }
        row.update({f"val_{name}": value for name, value in metrics.items()})
        if totals.failure is None and not all(
            math.isfinite(v) for v in row.values() if v is not None
        ):
            totals.failure = _divergence_message(
                epoch, "", "the validation loss or a metric became NaN/infinite", lr
            )
        if totals.failure is not None:
            result.diverged = True
            result.divergence_message = totals.failure
            model.load_state_dict(last_good_state)  # drop the weights that diverged
            break

        result.history.append(row)
        result.epoch_seconds.append(time.perf_counter() - started)
        last_good_state = model.state_dict()
        result.model_epoch = epoch
        if on_epoch is not None:
            on_epoch(dict(row))

        watched = row["val_loss"] if has_val else row["train_loss"]
        if config.target_loss is not None and result.epochs_to_target is None:
            if watched <= config.target_loss:
                result.epochs_to_target = epoch
        if has_val and watched < best_loss - config.min_delta:
            best_loss = watched
            result.best_epoch = epoch
            best_state = last_good_state
        if config.patience is not None and result.best_epoch is not None:
            if epoch - result.best_epoch >= config.patience:
                result.stopped_early = epoch < config.epochs
                break

    if config.patience is not None and best_state is not None and result.best_epoch is not None:
        model.load_state_dict(best_state)
        result.model_epoch = result.best_epoch
    return result
