"""BinaryBERT's ternary weight splitting (TWS): a trained ternary model becomes a binary one, exactly.

Given a ternary weight t = alpha * {-1, 0, +1} (TWN, threshold Delta = 0.7 mean|W| over the latent W),
we want two latent weights W1, W2 whose binary images B(Wi) = sign(Wi) * mean|Wi| sum to t:

  where |W| > Delta:   W1 = W2 = W / 2              (same sign: the two halves add up to +-alpha)
  where |W| <= Delta:  W1 = +alpha/2 sign(W),  W2 = -W1   (opposite signs: they cancel to 0)

Then mean|W1| = mean|W2| = (sum_{|W|>Delta} |W| / 2 + n_zero * alpha / 2) / n = alpha / 2, because
alpha is the mean of |W| over the entries above the threshold; so B(W1) + B(W2) = t at every entry.
The same holds row by row for per-row scales. (This is our derivation; BinaryBERT's code picks a
different but equally exact split.) The split layer computes B(W1) x + B(W2) x, which is one binary
matrix product with the input repeated twice: the accelerator sees a layer of twice the width K.
"""

from __future__ import annotations

import torch
from .model import QuantBert
from .qconfig import QuantConfig
from .quantizers import bipolar_sign, ternary_threshold_and_scale


def split_ternary_weight(w: torch.Tensor, per_row: bool) -> tuple[torch.Tensor, torch.Tensor]:
    threshold, scale = ternary_threshold_and_scale(w, per_row)
    kept = w.abs() > threshold
    half_zero = scale / 2 * bipolar_sign(w)
    w1 = torch.where(kept, w / 2, half_zero)
    w2 = torch.where(kept, w / 2, -half_zero)
    return w1, w2


@torch.no_grad()
def split_ternary_model(ternary: QuantBert, binary_config: QuantConfig) -> QuantBert:
    """A binary model (1-bit weights, every quantized linear split in two) equal to ``ternary``."""
    if ternary.qc.weight_bits != 2:
        raise ValueError("ternary weight splitting needs a model with 2-bit (ternary) weights")
    binary = QuantBert(ternary.dims, binary_config.replace(weight_split=True)).to(next(ternary.parameters()).device)
    binary.load_state_dict(ternary.state_dict(), strict=False)  # everything but the new weight_split halves
    for name, layer in binary.quantized_linears().items():
        w1, w2 = split_ternary_weight(ternary.get_submodule(name).weight, layer.per_row)
        layer.weight.copy_(w1)
        layer.weight_split.copy_(w2)
    return binary
