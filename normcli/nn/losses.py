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
        self._index: np.ndarray | None = None
        self._row_starts = np.zeros(0, dtype=np.intp)
        self._classes = 0
        self._ones = np.ones(0)

    @staticmethod
    def _log_probs_parts(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (shifted logits z − max z, exp of them) for a numerically safe softmax."""
        # The row max via a transposed copy: a reduction over a short, contiguous row axis
        # is ~3x slower in numpy than one across rows.
        row_max = np.ascontiguousarray(logits.T).max(axis=0)
        shifted = logits - row_max[:, None]
        return shifted, np.exp(shifted)

    def _flat_index(self, target: np.ndarray, classes: int) -> np.ndarray:
        """Positions of (i, y_i) in the flattened (N, K) array."""
        n = target.shape[0]
        if self._row_starts.shape[0] != n or self._classes != classes:
            self._row_starts = np.arange(n) * classes
            self._classes = classes
        return self._row_starts + target

    def forward(self, output: np.ndarray, target: np.ndarray) -> float:
        n, classes = output.shape
        shifted, exps = self._log_probs_parts(output)
        if self._ones.shape[0] != classes or self._ones.dtype != exps.dtype:
            self._ones = np.ones(classes, dtype=exps.dtype)
        sums = exps @ self._ones  # row sums (BLAS)
        index = self._flat_index(target, classes)
        # Σ_i (log Σ_k exp(shifted_ik) − shifted[i, y_i]) / N
        loss = (np.log(sums).sum() - shifted.take(index).sum()) * (1.0 / n)
        exps /= sums[:, None]
        self._probs, self._index = exps, index
        return float(loss)

    def backward(self) -> np.ndarray:
        probs, index = self._probs, self._index
        if probs is None or index is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        grad = probs * (1.0 / probs.shape[0])
        grad.ravel()[index] -= 1.0 / probs.shape[0]
        return grad

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        shifted, exps = self._log_probs_parts(output)
        return np.log(exps.sum(axis=1)) - shifted[np.arange(output.shape[0]), target]

    @staticmethod
    def probabilities(logits: np.ndarray) -> np.ndarray:
        """Row-wise softmax of ``logits``."""
        exps = SoftmaxCrossEntropy._log_probs_parts(logits)[1]
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
