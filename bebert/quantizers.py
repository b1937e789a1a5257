"""Quantizers of the binary BERTs: each a short autograd Function, its STE in ``backward``.

Weights (no learnable parameters of their own):
  * :func:`binarize_weight`   BinaryBERT / BWN:  alpha * sign(W),           alpha = mean|W|
  * :func:`binarize_weight` with ``center=True``, BiT: alpha * sign(W - mean W), alpha = mean|W - mean W|
  * :func:`ternarize_weight`  TWN (for ternary weight splitting): alpha * {-1, 0, +1}, threshold 0.7 * mean|W|
  Scales are per matrix or per output row. The straight-through estimator is the identity.

Activations (modules, they own a learnable step):
  * :class:`LsqQuantizer`       LSQ (Esser et al. 2020): step * clamp(round(x / step), Qn, Qp), signed or unsigned
  * :class:`ElasticBinarizer`   BiT (Liu et al. 2022): signed  alpha * sign(x - shift)   (shift per channel)
                                                     unsigned alpha * round(x / alpha) in {0, alpha} (softmax outputs)

sign(0) is +1 everywhere: the hardware stores +1 as bit 1 and -1 as bit 0 and has no zero, so the
float model must make the same choice or the integer datapath would differ on exact zeros.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def bipolar_sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (no zeros: see the module docstring)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def _scale(w: torch.Tensor, per_row: bool) -> torch.Tensor:
    """mean |w| over the matrix, or over each output row (shape (rows, 1))."""
    if per_row:
        return w.abs().mean(dim=-1, keepdim=True)
    return w.abs().mean()


class _BinarizeWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, per_row: bool, center: bool):
        if center:
            w = w - w.mean(dim=-1, keepdim=True) if per_row else w - w.mean()
        return bipolar_sign(w) * _scale(w, per_row)

    @staticmethod
    def backward(ctx, grad):
        # Identity STE, as BinaryBERT: the latent weight receives the gradient of its binary image.
        return grad, None, None


def binarize_weight(w: torch.Tensor, per_row: bool = False, center: bool = False) -> torch.Tensor:
    """alpha * sign(W) (BinaryBERT) or alpha * sign(W - mean W) (BiT, ``center=True``)."""
    return _BinarizeWeight.apply(w, per_row, center)


def binary_weight_parts(w: torch.Tensor, per_row: bool = False, center: bool = False):
    """The two factors of :func:`binarize_weight`: signs (+-1) and scale (scalar or (rows, 1))."""
    with torch.no_grad():
        if center:
            w = w - w.mean(dim=-1, keepdim=True) if per_row else w - w.mean()
        return bipolar_sign(w), _scale(w, per_row)


def ternary_threshold_and_scale(w: torch.Tensor, per_row: bool):
    """TWN: threshold 0.7 * mean|W|, scale = mean |W| over the entries above the threshold."""
    threshold = 0.7 * _scale(w, per_row)
    mask = (w.abs() > threshold).to(w.dtype)
    dims = dict(dim=-1, keepdim=True) if per_row else {}
    scale = (w.abs() * mask).sum(**dims) / mask.sum(**dims).clamp_min(1.0)
    return threshold, scale


class _TernarizeWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, per_row: bool):
        threshold, scale = ternary_threshold_and_scale(w, per_row)
        return scale * ((w > threshold).to(w.dtype) - (w < -threshold).to(w.dtype))

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def ternarize_weight(w: torch.Tensor, per_row: bool = False) -> torch.Tensor:
    """alpha * {-1, 0, +1} (TWN), the half-width model of BinaryBERT's ternary weight splitting."""
    return _TernarizeWeight.apply(w, per_row)


def integer_range(bits: int, signed: bool) -> tuple[int, int]:
    """(Qn, Qp): two's complement for signed, [0, 2^b - 1] for unsigned."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class _Lsq(torch.autograd.Function):
    """LSQ forward and gradients (Esser et al. 2020, eq. 3 and 5)."""

    @staticmethod
    def forward(ctx, x, step, qn: int, qp: int, grad_scale: float):
        q = x / step
        ctx.save_for_backward(q)
        ctx.range = qn, qp, grad_scale
        return q.round().clamp(qn, qp) * step

    @staticmethod
    def backward(ctx, grad):
        (q,) = ctx.saved_tensors
        qn, qp, grad_scale = ctx.range
        below, above = q < qn, q > qp
        inside = ~(below | above)
        # d(out)/d(step): (round(q) - q) inside the range, the clamp bound outside it.
        d_step = torch.where(below, float(qn), torch.where(above, float(qp), q.round() - q))
        grad_step = (d_step * grad).sum() * grad_scale
        return grad * inside.to(grad.dtype), grad_step.reshape(1), None, None, None


class _ElasticSign(torch.autograd.Function):
    """BiT's 1-bit signed elastic binarizer: alpha * sign(u), u = x - shift."""

    @staticmethod
    def forward(ctx, u, alpha, grad_scale: float):
        ctx.save_for_backward(u, alpha)
        ctx.grad_scale = grad_scale
        return bipolar_sign(u) * alpha

    @staticmethod
    def backward(ctx, grad):
        u, alpha = ctx.saved_tensors
        inside = (u.abs() <= alpha).to(grad.dtype)
        grad_alpha = (bipolar_sign(u) * grad).sum() * ctx.grad_scale
        return grad * inside, grad_alpha.reshape(1), None


class _Activation(nn.Module):
    """Base of the activation quantizers: a scalar learnable step set from the first batch it sees.

    The step starts from the data (LSQ's 2 mean|x| / sqrt(Qp)) rather than a constant, since BERT's
    activations span orders of magnitude between layers. Under DistributedDataParallel the first
    batch differs per process, so the training loop calibrates before wrapping the model, and DDP
    then broadcasts rank 0's step to every process.
    """

    def __init__(self):
        super().__init__()
        self.step = nn.Parameter(torch.ones(1))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        # Reading the buffer makes a GPU wait for its queue on every forward; once it has been seen set, this
        # remembers it. Loading a state dict forgets it (the loaded flag is read again on the next forward).
        self._seen_initialized = False

    def _load_from_state_dict(self, *args, **kwargs):
        self._seen_initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    def _initial_step(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _maybe_initialize(self, x: torch.Tensor) -> None:
        if self._seen_initialized:
            return
        if not bool(self.initialized):
            with torch.no_grad():
                self.step.copy_(self._initial_step(x.detach()).clamp_min(1e-5).reshape(1))
                self.initialized.fill_(True)
        self._seen_initialized = True

    def _grad_scale(self, x: torch.Tensor, qp: int) -> float:
        return 1.0 / math.sqrt(x.numel() * max(qp, 1))


class LsqQuantizer(_Activation):
    """b-bit uniform activation quantizer with a learned step (LSQ); output = step * integer."""

    def __init__(self, bits: int, signed: bool = True):
        super().__init__()
        if not 2 <= bits <= 16:
            raise ValueError(f"LSQ bit width must be between 2 and 16, not {bits}")
        self.bits, self.signed = bits, signed
        self.qn, self.qp = integer_range(bits, signed)

    def _initial_step(self, x):
        return 2 * x.abs().mean() / math.sqrt(self.qp)

    def forward(self, x):
        self._maybe_initialize(x)
        step = self.step.abs().clamp_min(1e-5)
        return _Lsq.apply(x, step, self.qn, self.qp, self._grad_scale(x, self.qp))

    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes the hardware sees: clamp(round(x / step), Qn, Qp)."""
        step = self.step.abs().clamp_min(1e-5)
        return (x / step).round().clamp(self.qn, self.qp)

    def extra_repr(self):
        return f"bits={self.bits}, signed={self.signed}"


class ElasticBinarizer(_Activation):
    """BiT's elastic binarization of activations, with learnable scale (and shift when signed).

    signed:   alpha * sign(x - shift), shift learnable per channel (last axis of size ``channels``)
    unsigned: alpha * clamp(round(x / alpha), 0, 1), values {0, alpha} (torch.round: an exact tie
              x = alpha / 2 rounds to even, i.e. to 0): softmax outputs are non-negative, so
              {-1, +1} would throw away half the code space.
    """

    def __init__(self, signed: bool = True, channels: int | None = None):
        super().__init__()
        self.signed = signed
        self.shift = nn.Parameter(torch.zeros(channels)) if signed and channels else None

    def _initial_step(self, x):
        # Unsigned: the cut alpha / 2 starts at the mean, so an above-average probability becomes 1.
        return x.abs().mean() if self.signed else 2 * x.abs().mean()

    def forward(self, x):
        self._maybe_initialize(x)
        alpha = self.step.abs().clamp_min(1e-5)
        if self.signed:
            u = x - self.shift if self.shift is not None else x
            return _ElasticSign.apply(u, alpha, self._grad_scale(x, 1))
        return _Lsq.apply(x, alpha, 0, 1, self._grad_scale(x, 1))

    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The bits the hardware sees: +-1 (signed) or 0/1 (unsigned)."""
        alpha = self.step.abs().clamp_min(1e-5)
        if self.signed:
            return bipolar_sign(x - self.shift if self.shift is not None else x)
        return (x / alpha).round().clamp(0, 1)

    def extra_repr(self):
        return f"signed={self.signed}"
