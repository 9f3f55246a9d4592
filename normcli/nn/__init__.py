"""normcli's neural-network core: a numpy MLP with batch normalization, trained by SGD or Adam.

Pure numpy: no files, no data frames, and nothing of normcli but its errors. Modules, one
concept each:

* :mod:`normcli.nn.layers` — Linear, BatchNorm1d, ReLU/LeakyReLU/Tanh/GELU, Dropout
* :mod:`normcli.nn.losses` — SoftmaxCrossEntropy, MSELoss
* :mod:`normcli.nn.optim` — SGD (momentum, Nesterov), Adam, learning-rate schedules
* :mod:`normcli.nn.model` — NetworkConfig, MLPConfig, MLP
* :mod:`normcli.nn.training` — TrainConfig, train_network, evaluate

Semantics follow PyTorch (layer equations, initialisation, optimizer updates, batch-norm
momentum), so results can be checked against it; PyTorch itself is never imported here.
Saving a model to a file is :mod:`normcli.learn.modelfile`'s job.
"""

from normcli.nn.layers import (
    GELU,
    BatchNorm1d,
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    SettingError,
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
    NetworkConfig,
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
    OPTIMIZERS,
    TrainConfig,
    TrainResult,
    batch_bounds,
    evaluate,
    train_network,
)

__all__ = [
    "ACTIVATIONS",
    "BN_PLACEMENTS",
    "DTYPES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TASKS",
    "Adam",
    "BatchNorm1d",
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
    "NetworkConfig",
    "Optimizer",
    "ReLU",
    "SGD",
    "SettingError",
    "SoftmaxCrossEntropy",
    "StepLR",
    "Tanh",
    "TrainConfig",
    "TrainResult",
    "batch_bounds",
    "erf",
    "evaluate",
    "make_schedule",
    "train_network",
]
