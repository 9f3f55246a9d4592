"""normcli's neural-network core: a numpy MLP with batch normalization, trained by SGD or Adam.

Modules, one concept each:

* :mod:`normcli.nn.layers` — Linear, BatchNorm1d, ReLU/LeakyReLU/Tanh/GELU, Dropout
* :mod:`normcli.nn.losses` — SoftmaxCrossEntropy, MSELoss
* :mod:`normcli.nn.optim` — SGD (momentum, Nesterov), Adam, learning-rate schedules
* :mod:`normcli.nn.model` — MLPConfig, MLP, save_model / load_model (.npz)
* :mod:`normcli.nn.training` — TrainConfig, train_network, compare_normalization

Semantics follow PyTorch (layer equations, initialisation, optimizer updates, batch-norm
momentum), so results can be checked against it; PyTorch itself is never imported here.
"""

from normcli.nn.layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Tanh,
    erf,
)
from normcli.nn.losses import Loss, MSELoss, SoftmaxCrossEntropy
from normcli.nn.model import (
    ACTIVATIONS,
    BN_PLACEMENTS,
    DTYPES,
    MLP,
    TASKS,
    MLPConfig,
    load_model,
    model_from_bytes,
    model_to_bytes,
    save_model,
)
from normcli.nn.optim import (
    SCHEDULES,
    SGD,
    Adam,
    ConstantLR,
    CosineLR,
    LRSchedule,
    Optimizer,
    StepLR,
    make_schedule,
)
from normcli.nn.training import (
    COMPARISON_SETTINGS,
    OPTIMIZERS,
    ComparisonRow,
    TrainConfig,
    TrainResult,
    batch_bounds,
    compare_normalization,
    evaluate,
    train_network,
)

__all__ = [
    "ACTIVATIONS",
    "BN_PLACEMENTS",
    "COMPARISON_SETTINGS",
    "DTYPES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TASKS",
    "Adam",
    "BatchNorm1d",
    "ComparisonRow",
    "ConstantLR",
    "CosineLR",
    "Dropout",
    "GELU",
    "LRSchedule",
    "Layer",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MLP",
    "MLPConfig",
    "MSELoss",
    "Optimizer",
    "ReLU",
    "SGD",
    "SoftmaxCrossEntropy",
    "StepLR",
    "Tanh",
    "TrainConfig",
    "TrainResult",
    "batch_bounds",
    "compare_normalization",
    "erf",
    "evaluate",
    "load_model",
    "make_schedule",
    "model_from_bytes",
    "model_to_bytes",
    "save_model",
    "train_network",
]
