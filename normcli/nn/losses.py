"""Loss functions: ``forward(output, target) -> float`` and ``backward() -> ∂L/∂output``.

Both reduce by the mean, like PyTorch's default ``reduction='mean'``, and compute in the dtype
of the network output.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Loss", "SoftmaxCrossEntropy", "MSELoss"]


class Loss:
    """Base class: a scalar loss of a batch of network outputs and targets."""

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The loss of each row (no reduction), for evaluation over many batches."""
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by the negative log-likelihood of the true class, fused.

    Forward, for logits z (N, K) and integer targets y ∈ {0..K−1}:

        p = softmax(z) (row-wise),   L = −(1/N) Σ_i log p[i, y_i]
          = (1/N) Σ_i (logsumexp(z_i) − z[i, y_i])     (computed with z shifted by its row max)

    Gradient: ∂L/∂z = (p − onehot(y)) / N  — PyTorch's ``nn.CrossEntropyLoss``.
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._target: np.ndarray | None = None

    @staticmethod
    def _log_probs_parts(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (shifted logits z − max z, exp of them) for a numerically safe softmax."""
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted, np.exp(shifted)

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        n = output.shape[0]
        shifted, exps = self._log_probs_parts(output)
        sums = exps.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        # Σ_i (log Σ_k exp(shifted_ik) − shifted[i, y_i]) / N
        loss = (np.log(sums).sum() - shifted[rows, target].sum()) * (1.0 / n)
        exps /= sums
        self._probs, self._target = exps, target
        return float(loss)

    def backward(self) -> np.ndarray:
        probs, target = self._probs, self._target
        if probs is None or target is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        n = probs.shape[0]
        grad = probs.copy()
        grad[np.arange(n), target] -= 1.0
        grad *= 1.0 / n
        return grad

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        shifted, exps = self._log_probs_parts(output)
        return np.log(exps.sum(axis=1)) - shifted[np.arange(output.shape[0]), target]

    @staticmethod
    def probabilities(logits: np.ndarray) -> np.ndarray:
        """Row-wise softmax of ``logits``."""
        exps = np.exp(logits - logits.max(axis=1, keepdims=True))
        exps /= exps.sum(axis=1, keepdims=True)
        return exps


class MSELoss(Loss):
    """Mean squared error over every element, PyTorch's ``nn.MSELoss``.

    Forward:  L = (1/(N·D)) Σ (output − target)²      output, target: (N, D)
    Gradient: ∂L/∂output = 2 (output − target) / (N·D)

    A 1-D target of length N is taken as the column (N, 1).
    """

    def __init__(self) -> None:
        self._diff: np.ndarray | None = None

    @staticmethod
    def _as_output_shape(output: np.ndarray, target: np.ndarray) -> np.ndarray:
        if target.ndim == 1 and output.ndim == 2 and output.shape[1] == 1:
            target = target[:, None]
        if target.shape != output.shape:
            raise ValueError(f"MSELoss: target shape {target.shape} != output shape {output.shape}")
        return target

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        diff = output - self._as_output_shape(output, target)
        self._diff = diff
        flat = diff.ravel()
        return float(np.dot(flat, flat) * (1.0 / flat.size))

    def backward(self) -> np.ndarray:
        diff = self._diff
        if diff is None:
            raise RuntimeError("MSELoss.backward called before forward")
        return diff * (2.0 / diff.size)

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        diff = output - self._as_output_shape(output, target)
        return (diff * diff).mean(axis=1)
