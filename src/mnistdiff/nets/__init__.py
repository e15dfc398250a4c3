"""Networks, the report's CNN (cnn.py) and a small UNet (unet.py): net(x_t, t) -> tensor with x_t's shape.

They know nothing of diffusion: t is a float per image (timestep / T, in [0, 1]); the process decides
what the output means. A conditional net also takes y, the digit per image (NULL_LABEL: "no label",
also what y=None means), embedded and added where the time embedding goes (classifier-free guidance,
Ho & Salimans 2022, sampling/guidance.py). Imports only torch: nets know no other stage.
"""

from __future__ import annotations

from torch import nn

from .cnn import CNNBlock, SeedCNN
from .layers import ACTIVATIONS, N_DIGITS, NULL_LABEL, LabelEmbedding, SinusoidalTimeEncoding, null_labels
from .unet import MAX_LEVELS, ResBlock, SelfAttention, UNet, norm_groups

__all__ = ["NETS", "build", "count_parameters", "SeedCNN", "UNet", "CNNBlock", "ResBlock", "SelfAttention",
           "ACTIVATIONS", "N_DIGITS", "NULL_LABEL", "MAX_LEVELS", "LabelEmbedding", "SinusoidalTimeEncoding",
           "null_labels", "norm_groups"]

NETS = {"cnn": lambda m: SeedCNN(tuple(m.hidden), m.act, conditional=m.conditional),
        "unet": lambda m: UNet(tuple(m.hidden), m.act, attention=m.attention, res_blocks=m.res_blocks,
                               conditional=m.conditional, scale_shift=m.scale_shift)}


def build(model_cfg) -> nn.Module:
    """Network from a ModelConfig (the one place that maps config names to classes)."""
    return NETS[model_cfg.net](model_cfg)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
