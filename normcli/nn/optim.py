"""Optimizers (SGD with momentum/Nesterov, Adam) and per-epoch learning-rate schedules.

An optimizer holds a list of ``(value, gradient)`` array pairs — from ``Layer.parameters()``,
``MLP.parameters()`` or, fastest, the single pair ``MLP.flat_parameters()`` — and updates each
value **in place** from its gradient on :meth:`Optimizer.step`. The update rules are PyTorch's
(``torch.optim.SGD`` with ``dampening=0`` and ``torch.optim.Adam`` without amsgrad), applied
element-wise, so grouping parameters into one flat array changes nothing. Gradients are
overwritten by every ``backward``, so there is no ``zero_grad``.

Weight decay is PyTorch's coupled L2 penalty: ``g ← g + weight_decay · θ`` before the update,
applied to every parameter given (biases and batch-norm γ, β too, as ``model.parameters()``
does in PyTorch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from normcli.nn.layers import SettingError

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "LRSchedule",
    "ConstantLR",
    "StepLR",
    "CosineLR",
    "make_schedule",
    "SCHEDULES",
]

ParamPair = tuple[np.ndarray, np.ndarray]


class Optimizer:
    """Base class: updates ``(value, gradient)`` pairs in place; ``lr`` may be changed any time."""

    def __init__(self, params: Iterable[ParamPair], lr: float, weight_decay: float = 0.0) -> None:
        self.params: list[ParamPair] = list(params)
        if not self.params:
            raise SettingError("optimizer got no parameters")
        for value, grad in self.params:
            if value.shape != grad.shape or value.dtype != grad.dtype:
                raise SettingError("each parameter needs a gradient of the same shape and dtype")
        if not lr >= 0.0:
            raise SettingError(f"learning rate must be >= 0, got {lr}")
        if not weight_decay >= 0.0:
            raise SettingError(f"weight decay must be >= 0, got {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self._scratch = [np.empty_like(value) for value, _ in self.params]

    def _decayed_grad(self, index: int) -> np.ndarray:
        """g + weight_decay·θ in a scratch array (or g itself when there is no decay)."""
        value, grad = self.params[index]
        if self.weight_decay == 0.0:
            return grad
        out = np.multiply(value, self.weight_decay, out=self._scratch[index])
        out += grad
        return out

    def step(self) -> None:
        raise NotImplementedError

    def gradients_finite(self) -> bool:
        """Whether every gradient is finite (no NaN, no ±inf).

        A training loop may ask after :meth:`step` (it discards the weights of a step whose
        gradients were not finite): the fused optimizers of :mod:`normcli.nn.fused` then answer
        from the sums of squares they computed during the step, without another pass.
        """
        for _, grad in self.params:
            flat = grad.ravel()
            with np.errstate(over="ignore", invalid="ignore"):
                squared = float(np.dot(flat, flat))  # overflows only if huge, NaN or inf
            if not math.isfinite(squared) and not np.isfinite(flat).all():
                return False
        return True


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    With g = ∇θ + λθ (λ = weight_decay) and momentum μ:

        first step:  b ← g;        later steps:  b ← μ·b + g
        plain:       θ ← θ − lr · b
        Nesterov:    θ ← θ − lr · (g + μ·b)

    Without momentum (μ = 0): θ ← θ − lr · g.
    """

    def __init__(
        self,
        params: Iterable[ParamPair],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise SettingError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise SettingError("Nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        mu = self.momentum
        for i, (value, _) in enumerate(self.params):
            direction = self._decayed_grad(i)
            if mu != 0.0:
                buf = self._buffers[i]
                if buf is None:
                    buf = self._buffers[i] = direction.copy()
                else:
                    buf *= mu
                    buf += direction
                if self.nesterov:
                    direction = np.add(direction, mu * buf, out=self._scratch[i])
                else:
                    direction = buf
            update = np.multiply(direction, self.lr, out=self._scratch[i])
            value -= update


class Adam(Optimizer):
    """Adam with bias correction, as ``torch.optim.Adam`` (amsgrad=False).

    At step t = 1, 2, …, with g = ∇θ + λθ:

        m ← β₁·m + (1 − β₁)·g,          v ← β₂·v + (1 − β₂)·g²
        θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

    (m and v start at 0; ε is added after the bias correction of √v, as in PyTorch.)
    """

    def __init__(
        self,
        params: Iterable[ParamPair],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        beta1, beta2 = (float(b) for b in betas)
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise SettingError(f"Adam betas must be in [0, 1), got {betas}")
        if not eps >= 0.0:
            raise SettingError(f"Adam eps must be >= 0, got {eps}")
        self.beta1, self.beta2, self.eps = beta1, beta2, float(eps)
        self.step_count = 0
        self._m = [np.zeros_like(value) for value, _ in self.params]
        self._v = [np.zeros_like(value) for value, _ in self.params]
        self._denom = [np.empty_like(value) for value, _ in self.params]

    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1.0 - b1**t)
        bias_correction2_sqrt = math.sqrt(1.0 - b2**t)
        for i, (value, _) in enumerate(self.params):
            g = self._decayed_grad(i)
            m, v, denom = self._m[i], self._v[i], self._denom[i]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            np.sqrt(v, out=denom)
            denom *= 1.0 / bias_correction2_sqrt
            denom += self.eps
            update = np.divide(m, denom, out=denom)
            update *= step_size
            value -= update


class LRSchedule:
    """A learning rate per epoch (0-based), evaluated in closed form."""

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def __call__(self, epoch: int) -> float:
        return self.lr_at(epoch)


class ConstantLR(LRSchedule):
    """lr(epoch) = base_lr."""

    def __init__(self, base_lr: float) -> None:
        self.base_lr = float(base_lr)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr


class StepLR(LRSchedule):
    """lr(epoch) = base_lr · γ^⌊epoch / step_size⌋, PyTorch's ``StepLR``."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise SettingError(f"step_size must be >= 1, got {step_size}")
        self.base_lr, self.step_size, self.gamma = float(base_lr), int(step_size), float(gamma)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(LRSchedule):
    """lr(epoch) = min_lr + (base_lr − min_lr) · (1 + cos(π · epoch / total_epochs)) / 2.

    PyTorch's ``CosineAnnealingLR(T_max=total_epochs, eta_min=min_lr)`` in closed form, stepped
    once per epoch: epoch 0 trains at base_lr, the last epoch (total − 1) just above min_lr.
    """

    def __init__(self, base_lr: float, total_epochs: int, min_lr: float = 0.0) -> None:
        if total_epochs < 1:
            raise SettingError(f"total_epochs must be >= 1, got {total_epochs}")
        self.base_lr, self.total_epochs, self.min_lr = float(base_lr), int(total_epochs), min_lr

    def lr_at(self, epoch: int) -> float:
        cosine = (1.0 + math.cos(math.pi * epoch / self.total_epochs)) / 2.0
        return self.min_lr + (self.base_lr - self.min_lr) * cosine


SCHEDULES = ("none", "step", "cosine")


def make_schedule(
    name: str,
    base_lr: float,
    epochs: int,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> LRSchedule:
    """Build the schedule called ``name`` ('none', 'step' or 'cosine').

    'step' decays by ``gamma`` every ``step_size`` epochs (default: a third of ``epochs``, at
    least 1); 'cosine' anneals to 0 over ``epochs``.
    """
    if name == "none":
        return ConstantLR(base_lr)
    if name == "step":
        return StepLR(base_lr, step_size if step_size is not None else max(1, epochs // 3), gamma)
    if name == "cosine":
        return CosineLR(base_lr, epochs)
    raise SettingError(f"unknown learning-rate schedule {name!r}; choose one of {SCHEDULES}")
