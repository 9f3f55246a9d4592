"""The training step's element-wise work in fused numba kernels: the optional fast path.

numpy makes one pass over a (batch, width) array per operation: a hidden block of the MLP
(bias, ReLU, batch norm, forward and backward) costs about 16 such passes, each reading and
writing a whole batch and paying numpy's dispatch, and between them the batch travels through
the cache again. Here each block is five loops (three forward, two backward) compiled by numba,
and the softmax cross-entropy and the optimizer update are one loop each. The matrix products
stay numpy's (BLAS).

**The math is the layers'.** Nothing here defines a new function: a :class:`FusedHidden` block
computes exactly the equations in the docstrings of :class:`~normcli.nn.layers.Linear`,
:class:`~normcli.nn.layers.ReLU` / :class:`~normcli.nn.layers.LeakyReLU` and
:class:`~normcli.nn.layers.BatchNorm1d`, in the same element-wise order of operations (so
element-wise results are bit-identical to the numpy path); :class:`FusedSoftmaxCrossEntropy`,
:class:`FusedSGD` and :class:`FusedAdam` compute their parents' formulas (the optimizers bit for
bit). Only the sums over the batch (μ, σ², ∂L/∂γ, ∂L/∂β, ∂L/∂b, the loss) are added in another
order — in blocks of ``_BLOCK_ROWS`` rows, each block in the array's dtype and the blocks in
float64, which is at least as accurate as numpy's float32 BLAS sums — so the two paths agree
within float rounding, and each is bit-for-bit reproducible on its own.

**Optional.** This module imports numba at import time; nothing imports it but
:func:`normcli.nn.training.train_network` when it chooses the numba kernels (see
``TrainConfig.kernels``), so numba is never loaded for ``--help``, ``fit``, ``transform`` or
``predict``. Install it with ``pip install 'normcli[fast]'``.

**Compilation.** Kernels are compiled on first use for each dtype and placement (4–5 s for
one network's, measured on a busy 2-core machine) and cached on disk by numba (``cache=True``:
next to this file, or in numba's per-user cache directory when this folder is read-only;
without any writable place they compile in memory on every run). Later runs import numba and
load them in ~0.7 s, mostly numba's own start-up. :func:`warm_up` does this before the first
epoch, so no epoch's time includes it; small runs never pay it (``TrainConfig.kernels``).

What is fused: a Linear followed by ReLU or LeakyReLU and BatchNorm1d in either order, or by
the activation alone (``bn_placement`` 'after', 'before', 'none'). Other hidden blocks (tanh,
GELU) run their numpy layers, still with the fused loss and optimizer. Dropout runs its numpy
layer after the fused block. Eval mode (validation, prediction) always runs the numpy layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from normcli.nn.layers import BatchNorm1d, Layer, LeakyReLU, Linear, ReLU
from normcli.nn.losses import Loss, SoftmaxCrossEntropy
from normcli.nn.optim import SGD, Adam, Optimizer

if TYPE_CHECKING:
    from normcli.nn.model import MLP

__all__ = [
    "FusedHidden",
    "FusedSoftmaxCrossEntropy",
    "FusedSGD",
    "FusedAdam",
    "training_steps",
    "warm_up",
    "NUMBA_VERSION",
]

NUMBA_VERSION: str = numba.__version__

_BLOCK_ROWS = 64
"""Rows summed in the array's dtype before the block's sum is added to a float64 total: float32
rounding stays that of 64 terms whatever the batch size, at almost the speed of a plain loop."""


def _jit(function: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit`` with an on-disk cache, or without one when numba finds no writable place.

    ``error_model="numpy"``: division is IEEE (x/0 is ±inf or NaN, as in numpy) instead of
    Python's ZeroDivisionError, whose check in every division keeps loops from vectorizing
    (Adam's update: 4.6× slower).
    """
    options = {"nogil": True, "error_model": "numpy"}
    try:
        return numba.njit(cache=True, **options)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(**options)(function)


# -- kernels --------------------------------------------------------------------------------------
# Arrays are C-contiguous (rows, features); the loops run over features innermost, so each pass
# is a vectorized sweep along contiguous rows. Scalars arrive in the dtype of the arrays, so
# float32 arithmetic stays float32 as in numpy. ``slope`` is 0 for ReLU.
# Sums over rows: blocks of _BLOCK_ROWS rows in ``part`` (the dtype), blocks into ``total``
# (float64).


@_jit
def _inactive(v, slope):  # noqa: ANN001, ANN202
    """The activation of a v that is not > 0: NaN stays NaN, ReLU gives 0, LeakyReLU slope·v."""
    if v != v:
        return v
    if slope == 0:
        return slope  # +0 in the dtype, as np.maximum(v, 0.0) (also for v = −∞)
    return v * slope


@_jit
def _bias_sum(h, b, activate, slope, total, part):  # noqa: ANN001, ANN202
    """h ← h + b, then the activation if ``activate``, in place; total ← Σ_rows h."""
    n, f = h.shape
    total[:] = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        part[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                v = h[i, j] + b[j]
                if activate and not v > 0:
                    v = _inactive(v, slope)
                h[i, j] = v
                part[j] += v
        total += part


@_jit
def _batch_stats(h, bn, total, part, mean, var, invstd, scale):  # noqa: ANN001, ANN202
    """From total = Σ h: μ = Σh/N, σ² = Σ(h − μ)²/N (biased, a second pass), invstd, s = γ·invstd;
    and the running statistics, as BatchNorm1d.update_running_stats (see FusedHidden._bn_terms)."""
    gamma, running_mean, running_var, eps, keep, m, m_unbiased = bn
    n, f = h.shape
    for j in range(f):
        mean[j] = total[j] / n
    total[:] = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        part[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                d = h[i, j] - mean[j]
                part[j] += d * d
        total += part
    for j in range(f):
        var[j] = total[j] / n
        invstd[j] = 1 / np.sqrt(var[j] + eps)  # correctly rounded, as numpy's reciprocal
        scale[j] = gamma[j] * invstd[j]
        running_mean[j] = running_mean[j] * keep + m * mean[j]
        running_var[j] = running_var[j] * keep + m_unbiased * var[j]


@_jit
def _act_bn_forward(h, b, slope, bn, beta, out, mean, var, invstd, scale):  # noqa: ANN001, ANN202
    """'after': r = act(h + b), kept in h; out = (r − μ)·s + β."""
    n, f = h.shape
    total = np.empty(f, np.float64)
    part = np.empty(f, h.dtype)
    _bias_sum(h, b, True, slope, total, part)
    _batch_stats(h, bn, total, part, mean, var, invstd, scale)
    for i in range(n):
        for j in range(f):
            out[i, j] = (h[i, j] - mean[j]) * scale[j] + beta[j]


@_jit
def _bn_act_forward(h, b, slope, bn, beta, out, mean, var, invstd, scale):  # noqa: ANN001, ANN202
    """'before': h ← h + b, kept; out = act((h − μ)·s + β)."""
    n, f = h.shape
    total = np.empty(f, np.float64)
    part = np.empty(f, h.dtype)
    _bias_sum(h, b, False, slope, total, part)
    _batch_stats(h, bn, total, part, mean, var, invstd, scale)
    for i in range(n):
        for j in range(f):
            v = (h[i, j] - mean[j]) * scale[j] + beta[j]
            out[i, j] = v if v > 0 else _inactive(v, slope)


@_jit
def _act_forward(h, b, slope):  # noqa: ANN001, ANN202
    """'none': h ← act(h + b), in place."""
    n, f = h.shape
    for i in range(n):
        for j in range(f):
            v = h[i, j] + b[j]
            h[i, j] = v if v > 0 else _inactive(v, slope)


@_jit
def _bn_backward_terms(sum_d, sum_dc, invstd, scale, inv_n, dgamma, dbeta, coef, shift):  # noqa: ANN001, ANN202
    """dβ = Σd, dγ = invstd·Σ d·c; coef = s·invstd·dγ/N, shift = s·dβ/N (numpy's order)."""
    for j in range(invstd.shape[0]):
        dbeta[j] = sum_d[j]
        dgamma[j] = sum_dc[j]
        dgamma[j] *= invstd[j]
        coef[j] = scale[j] * invstd[j] * dgamma[j] * inv_n
        shift[j] = scale[j] * dbeta[j] * inv_n


@_jit
def _act_bn_backward(dout, r, mean, invstd, scale, slope, inv_n, dgamma, dbeta, db):  # noqa: ANN001, ANN202
    """'after': ∂L/∂h of out = BN(act(h)) in place of dout; dγ, dβ, and db = Σ_rows ∂L/∂h.

    c = r − μ is recomputed from the kept r exactly as the forward computed it; the activation's
    gradient gate is r > 0 (⇔ h > 0, for a slope ≥ 0).
    """
    n, f = dout.shape
    dtype = dout.dtype
    sum_d = np.zeros(f, np.float64)
    sum_dc = np.zeros(f, np.float64)
    part_d = np.empty(f, dtype)
    part_dc = np.empty(f, dtype)
    for start in range(0, n, _BLOCK_ROWS):
        part_d[:] = 0.0
        part_dc[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                g = dout[i, j]
                part_d[j] += g
                part_dc[j] += g * (r[i, j] - mean[j])
        sum_d += part_d
        sum_dc += part_dc
    coef = np.empty(f, dtype)
    shift = np.empty(f, dtype)
    _bn_backward_terms(sum_d, sum_dc, invstd, scale, inv_n, dgamma, dbeta, coef, shift)
    sum_d[:] = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        part_d[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                rv = r[i, j]
                g = (dout[i, j] * scale[j] - (rv - mean[j]) * coef[j]) - shift[j]
                if not rv > 0:
                    g = g * slope  # numpy: dout * mask (ReLU), dout * slope (LeakyReLU)
                dout[i, j] = g
                part_d[j] += g
        sum_d += part_d
    for j in range(f):
        db[j] = sum_d[j]


@_jit
def _bn_act_backward(dout, h, out, mean, invstd, scale, slope, inv_n, dgamma, dbeta, db):  # noqa: ANN001, ANN202
    """'before': ∂L/∂h of out = act(BN(h)) in place of dout; dγ, dβ, and db = Σ_rows ∂L/∂h.

    The activation's gate is out > 0 (⇔ its input > 0, for a slope ≥ 0); c = h − μ again.
    """
    n, f = dout.shape
    dtype = dout.dtype
    sum_d = np.zeros(f, np.float64)
    sum_dc = np.zeros(f, np.float64)
    part_d = np.empty(f, dtype)
    part_dc = np.empty(f, dtype)
    for start in range(0, n, _BLOCK_ROWS):
        part_d[:] = 0.0
        part_dc[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                g = dout[i, j]
                if not out[i, j] > 0:
                    g = g * slope
                dout[i, j] = g
                part_d[j] += g
                part_dc[j] += g * (h[i, j] - mean[j])
        sum_d += part_d
        sum_dc += part_dc
    coef = np.empty(f, dtype)
    shift = np.empty(f, dtype)
    _bn_backward_terms(sum_d, sum_dc, invstd, scale, inv_n, dgamma, dbeta, coef, shift)
    sum_d[:] = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        part_d[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                g = (dout[i, j] * scale[j] - (h[i, j] - mean[j]) * coef[j]) - shift[j]
                dout[i, j] = g
                part_d[j] += g
        sum_d += part_d
    for j in range(f):
        db[j] = sum_d[j]


@_jit
def _act_backward(dout, r, slope, db):  # noqa: ANN001, ANN202
    """'none': ∂L/∂h of act(h) in place of dout, and db = Σ_rows of it."""
    n, f = dout.shape
    total = np.zeros(f, np.float64)
    part = np.empty(f, dout.dtype)
    for start in range(0, n, _BLOCK_ROWS):
        part[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, n)):
            for j in range(f):
                g = dout[i, j]
                if not r[i, j] > 0:
                    g = g * slope
                dout[i, j] = g
                part[j] += g
        total += part
    for j in range(f):
        db[j] = total[j]


@_jit
def _softmax_cross_entropy(logits, target, inv_n, grad):  # noqa: ANN001, ANN202
    """Mean over rows of logsumexp(z) − z_y (summed in float64); grad ← (softmax − onehot)/N."""
    n, k = logits.shape
    loss = 0.0
    for i in range(n):
        top = logits[i, 0]
        for j in range(1, k):
            z = logits[i, j]
            if z > top or z != z:
                top = z
        total = np.exp(logits[i, 0] - top)
        grad[i, 0] = total
        for j in range(1, k):
            e = np.exp(logits[i, j] - top)
            grad[i, j] = e
            total += e
        y = target[i]
        loss += np.log(total) - (logits[i, y] - top)
        for j in range(k):
            grad[i, j] = grad[i, j] / total * inv_n
        grad[i, y] -= inv_n
    return loss / n


@_jit
def _sgd_update(v, g, b, lr, mu, decay, nesterov, first):  # noqa: ANN001, ANN202
    """One element of torch.optim.SGD in numpy's order of operations: (new θ, new buffer)."""
    if decay != 0:
        g = v * decay + g
    if mu != 0:
        b = g if first else b * mu + g
        g = g + b * mu if nesterov else b
    return v - g * lr, b


@_jit
def _adam_update(v, g, m, s, b1, b2, one_minus_b1, one_minus_b2, inv_bc2, eps, step_size, decay):  # noqa: ANN001, ANN202
    """One element of torch.optim.Adam (no amsgrad) in numpy's order: (new θ, new m, new v)."""
    if decay != 0:
        g = v * decay + g
    m = m * b1 + one_minus_b1 * g
    s = s * b2 + one_minus_b2 * (g * g)
    return v - m / (np.sqrt(s) * inv_bc2 + eps) * step_size, m, s


# The optimizers sweep the flat arrays as rows of _LANES elements (a 2-D view the loops
# vectorize), summing g² per lane in the dtype for _BLOCK_ROWS rows at a time, then in float64;
# the last n mod _LANES elements one by one.
_LANES = 64


@_jit
def _sgd_step(value, grad, buf, lr, mu, decay, nesterov, first):  # noqa: ANN001, ANN202
    """torch.optim.SGD over flat arrays (see SGD); returns Σ grad² of the gradients as given."""
    n = value.shape[0]
    rows = n // _LANES
    full = rows * _LANES
    V = value[:full].reshape((rows, _LANES))
    G = grad[:full].reshape((rows, _LANES))
    B = buf[:full].reshape((rows, _LANES))
    total = np.zeros(_LANES, np.float64)
    part = np.empty(_LANES, value.dtype)
    for start in range(0, rows, _BLOCK_ROWS):
        part[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, rows)):
            for j in range(_LANES):
                g = G[i, j]
                part[j] += g * g
                V[i, j], b = _sgd_update(V[i, j], g, B[i, j], lr, mu, decay, nesterov, first)
                if mu != 0:
                    B[i, j] = b
        total += part
    squares = total.sum()
    for k in range(full, n):
        g = grad[k]
        squares += g * g
        value[k], b = _sgd_update(value[k], g, buf[k], lr, mu, decay, nesterov, first)
        if mu != 0:
            buf[k] = b
    return squares


@_jit
def _adam_step(value, grad, m, v, b1, b2, one_minus_b1, one_minus_b2, inv_bc2, eps, step_size, decay):  # noqa: ANN001, ANN202
    """torch.optim.Adam over flat arrays (see Adam); returns Σ grad² of the gradients as given."""
    n = value.shape[0]
    rows = n // _LANES
    full = rows * _LANES
    V = value[:full].reshape((rows, _LANES))
    G = grad[:full].reshape((rows, _LANES))
    M = m[:full].reshape((rows, _LANES))
    S = v[:full].reshape((rows, _LANES))
    total = np.zeros(_LANES, np.float64)
    part = np.empty(_LANES, value.dtype)
    for start in range(0, rows, _BLOCK_ROWS):
        part[:] = 0.0
        for i in range(start, min(start + _BLOCK_ROWS, rows)):
            for j in range(_LANES):
                g = G[i, j]
                part[j] += g * g
                V[i, j], M[i, j], S[i, j] = _adam_update(V[i, j], g, M[i, j], S[i, j], b1, b2, one_minus_b1,
                                                         one_minus_b2, inv_bc2, eps, step_size, decay)  # fmt: skip
        total += part
    squares = total.sum()
    for k in range(full, n):
        g = grad[k]
        squares += g * g
        value[k], m[k], v[k] = _adam_update(value[k], g, m[k], v[k], b1, b2, one_minus_b1, one_minus_b2,
                                            inv_bc2, eps, step_size, decay)  # fmt: skip
    return squares


# -- the objects the training loop uses -----------------------------------------------------------

_ACTIVATIONS = (ReLU, LeakyReLU)


def _slope(activation: Layer) -> float:
    return activation.negative_slope if isinstance(activation, LeakyReLU) else 0.0


class FusedHidden:
    """A hidden block — Linear, then ReLU/LeakyReLU and BatchNorm1d — in training mode, fused.

    ``placement`` is the MLP's: 'after' = Linear → act → BN, 'before' = Linear → BN → act,
    'none' = Linear → act (``batchnorm`` None). The block computes those layers' equations (see
    their docstrings) with their own arrays: it reads W, b, γ, β, writes dW, db, dγ, dβ and
    updates the batch norm's running statistics (:meth:`BatchNorm1d.update_running_stats`).

    Forward: h = x Wᵀ (BLAS), then one kernel: h + b and the activation in place, μ and σ²
    (two passes), the normalized output. Backward: one kernel for the activation's and batch
    norm's gradients (two passes, ∂L/∂β, ∂L/∂γ and the Linear's ∂L/∂b summed on the way), then
    ∂L/∂W = doutᵀ x and ∂L/∂x = dout W (BLAS). The incoming ``dout`` is overwritten.

    Training mode only: with ``training=False`` the layers run one by one (numpy).
    """

    def __init__(
        self, linear: Linear, activation: Layer, batchnorm: BatchNorm1d | None, placement: str
    ) -> None:
        if placement not in ("after", "before", "none") or (batchnorm is None) != (placement == "none"):
            raise ValueError(f"no fused block for placement {placement!r} with batchnorm={batchnorm!r}")
        self.linear, self.activation, self.batchnorm, self.placement = linear, activation, batchnorm, placement
        dtype = linear.W.dtype
        self._slope = dtype.type(_slope(activation))
        width = linear.out_features
        self._mean, self._var, self._invstd, self._scale = (np.empty(width, dtype) for _ in range(4))
        self._x: np.ndarray | None = None
        self._h: np.ndarray | None = None
        self._out: np.ndarray | None = None
        self._terms: tuple = ()
        self._terms_for: tuple[int, float] | None = None

    def _bn_terms(self, rows: int) -> tuple:
        """What the forward kernels need of the batch norm: (γ, running mean, running var, ε,
        1 − m, m, m·N/(N − 1)), the scalars in the dtype as numpy applies Python floats to float32
        arrays. Counts the batch (``BatchNorm1d.next_momentum``); the kernel then computes
        ``running_mean ← running_mean·(1 − m) + m·μ_B`` and ``running_var ← running_var·(1 − m)
        + (m·N/(N − 1))·σ²_B``, :meth:`BatchNorm1d.update_running_stats`'s formulas and order.
        """
        bn = self.batchnorm
        assert bn is not None
        bn.check_batch_rows(rows)
        m = bn.next_momentum()
        if self._terms_for != (rows, m):
            kind = bn.gamma.dtype.type
            self._terms = (bn.gamma, bn.running_mean, bn.running_var, kind(bn.eps), kind(1.0 - m), kind(m),
                           kind(m * rows / (rows - 1)))  # fmt: skip
            self._terms_for = (rows, m)
        return self._terms

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers this block stands for, in the network's order."""
        if self.placement == "after":
            return (self.linear, self.activation, self.batchnorm)  # type: ignore[return-value]
        if self.placement == "before":
            return (self.linear, self.batchnorm, self.activation)  # type: ignore[return-value]
        return (self.linear, self.activation)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if not training:
            for layer in self.layers:
                x = layer.forward(x, training=False)
            return x
        linear, bn = self.linear, self.batchnorm
        h = np.matmul(x, linear.W.T)
        self._x = x
        if bn is None:
            _act_forward(h, linear.b, self._slope)
            self._h = self._out = h
            return h
        out = np.empty_like(h)
        kernel = _act_bn_forward if self.placement == "after" else _bn_act_forward
        kernel(h, linear.b, self._slope, self._bn_terms(h.shape[0]), bn.beta, out,
               self._mean, self._var, self._invstd, self._scale)  # fmt: skip
        self._h, self._out = h, out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        x, h = self._x, self._h
        if x is None or h is None:
            raise RuntimeError("FusedHidden.backward called before forward")
        linear, bn = self.linear, self.batchnorm
        dout = np.ascontiguousarray(dout)
        if bn is None:
            _act_backward(dout, h, self._slope, linear.db)
        else:
            inv_n = dout.dtype.type(1.0 / dout.shape[0])
            if self.placement == "after":
                _act_bn_backward(dout, h, self._mean, self._invstd, self._scale, self._slope,
                                 inv_n, bn.dgamma, bn.dbeta, linear.db)  # fmt: skip
            else:
                _bn_act_backward(dout, h, self._out, self._mean, self._invstd, self._scale,
                                 self._slope, inv_n, bn.dgamma, bn.dbeta, linear.db)  # fmt: skip
        self._h = self._out = None
        np.matmul(dout.T, x, out=linear.dW)
        if not linear.input_grad:
            return None
        return dout @ linear.W

    def __repr__(self) -> str:
        return "FusedHidden(" + " → ".join(repr(layer) for layer in self.layers) + ")"


def _block_at(layers: Sequence[Layer], index: int) -> FusedHidden | None:
    """The fused block that starts at ``layers[index]``, if a fusable pattern starts there."""
    linear = layers[index]
    if type(linear) is not Linear:
        return None
    after = list(layers[index + 1 : index + 3])
    kinds = [type(layer) for layer in after]
    activation = kinds[:1] and kinds[0] in _ACTIVATIONS
    if activation and kinds[1:] == [BatchNorm1d]:
        return FusedHidden(linear, after[0], after[1], "after")  # type: ignore[arg-type]
    if activation:
        return FusedHidden(linear, after[0], None, "none")
    if len(kinds) == 2 and kinds[0] is BatchNorm1d and kinds[1] in _ACTIVATIONS:
        return FusedHidden(linear, after[1], after[0], "before")  # type: ignore[arg-type]
    return None


def training_steps(layers: Sequence[Layer]) -> list[Layer | FusedHidden]:
    """The MLP's layers with every fusable hidden block replaced by a :class:`FusedHidden`."""
    steps: list[Layer | FusedHidden] = []
    index = 0
    while index < len(layers):
        block = _block_at(layers, index)
        steps.append(block if block is not None else layers[index])
        index += len(block.layers) if block is not None else 1
    return steps


class FusedSoftmaxCrossEntropy(SoftmaxCrossEntropy):
    """:class:`SoftmaxCrossEntropy` (same formulas) with forward and gradient in one kernel.

    The loss of the batch is summed in float64 (numpy's path sums in the dtype). ``backward``
    returns the gradient computed by ``forward``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._grad: np.ndarray | None = None

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        output = np.ascontiguousarray(output)
        grad = np.empty_like(output)
        inv_n = output.dtype.type(1.0 / output.shape[0])
        loss = _softmax_cross_entropy(output, np.ascontiguousarray(target, dtype=np.intp), inv_n, grad)
        self._grad = grad
        return float(loss)

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        return self._grad


def _flat(array: np.ndarray) -> np.ndarray:
    """A 1-D view of a C-contiguous array (the kernels update it in place)."""
    if not array.flags.c_contiguous:
        raise ValueError("the fused optimizers need C-contiguous parameter arrays")
    return array.reshape(-1)


class _FusedStep:
    """What the fused optimizers share: Σ g² of the last step, for :meth:`gradients_finite`."""

    params: list
    _squares: float | None = None

    def gradients_finite(self) -> bool:
        """From the last step's Σ g² (float32 squares can overflow: then look at the values)."""
        if self._squares is None:
            return super().gradients_finite()  # type: ignore[misc]
        if math.isfinite(self._squares):
            return True
        return all(bool(np.isfinite(grad).all()) for _, grad in self.params)


class FusedSGD(_FusedStep, SGD):
    """:class:`SGD` (same update, bit for bit) in one pass over each parameter array, which
    also sums the squared gradients for :meth:`gradients_finite`."""

    def step(self) -> None:
        squares = 0.0
        for i, (value, grad) in enumerate(self.params):
            kind = value.dtype.type
            first = self._buffers[i] is None
            if first and self.momentum != 0.0:
                self._buffers[i] = np.empty_like(value)
            buf = self._buffers[i] if self.momentum != 0.0 else value  # (unused without momentum)
            squares += _sgd_step(_flat(value), _flat(grad), _flat(buf), kind(self.lr),  # type: ignore[arg-type]
                                 kind(self.momentum), kind(self.weight_decay), self.nesterov, first)  # fmt: skip
        self._squares = squares


class FusedAdam(_FusedStep, Adam):
    """:class:`Adam` (same update, bit for bit) in one pass over each parameter array, which
    also sums the squared gradients for :meth:`gradients_finite`."""

    def step(self) -> None:
        self.step_count += 1
        t = self.step_count
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1.0 - b1**t)
        inv_bc2 = 1.0 / math.sqrt(1.0 - b2**t)
        squares = 0.0
        for i, (value, grad) in enumerate(self.params):
            kind = value.dtype.type
            squares += _adam_step(_flat(value), _flat(grad), _flat(self._m[i]), _flat(self._v[i]),
                                  kind(b1), kind(b2), kind(1.0 - b1), kind(1.0 - b2), kind(inv_bc2),
                                  kind(self.eps), kind(step_size), kind(self.weight_decay))  # fmt: skip
        self._squares = squares


def warm_up(model: MLP, loss: Loss, optimizer: Optimizer) -> None:
    """Compile (or load from numba's cache) the kernels a training run will call, before it starts.

    Runs a tiny twin of each fused object of ``model.training_steps``, ``loss`` and
    ``optimizer``, so that no epoch's time includes compilation and kernels the run never calls
    are never loaded.
    """
    dtype = model.dtype
    rng = np.random.default_rng(0)
    for step in model.training_steps:
        if isinstance(step, FusedHidden):
            batchnorm = None if step.batchnorm is None else BatchNorm1d(2, dtype=dtype)
            twin = FusedHidden(Linear(2, 2, rng, dtype), step.activation, batchnorm, step.placement)
            out = twin.forward(np.ones((3, 2), dtype))
            twin.backward(np.ones_like(out))
    if isinstance(loss, FusedSoftmaxCrossEntropy):
        FusedSoftmaxCrossEntropy().forward(np.zeros((2, 2), dtype), np.zeros(2, np.intp))
    if isinstance(optimizer, (FusedSGD, FusedAdam)):
        values, grads = np.zeros(2, dtype), np.zeros(2, dtype)
        twin_optimizer = type(optimizer)([(values, grads)], lr=0.1)
        twin_optimizer.step()
        twin_optimizer.step()
