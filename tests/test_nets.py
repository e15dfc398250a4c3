import pytest
import torch
from torch import nn

from mnistdiff import config as C, nets


@pytest.mark.parametrize("act, module", [("gelu", nn.GELU), ("relu", nn.ReLU), ("elu", nn.ELU), ("silu", nn.SiLU)])
def test_seed_cnn_shapes_and_activation(act, module):
    net = nets.SeedCNN((16, 32, 32, 16), act)
    x = torch.randn(3, 1, 28, 28)
    assert net(x, torch.rand(3)).shape == x.shape
    assert all(type(b.act) is module for b in net.blocks)  # the named activation, in every block


def test_seed_cnn_structure_is_the_reports():
    net = nets.build(C.Config().model)
    assert [b.conv.kernel_size for b in net.blocks] == [(7, 7)] * 4
    assert [b.conv.out_channels for b in net.blocks] == [16, 32, 32, 16]
    assert net.blocks[0].norm.normalized_shape == (16, 28, 28)  # LayerNorm over (C, H, W)
    assert net.out.kernel_size == (3, 3) and net.out.out_channels == 1


def test_time_changes_the_output():
    torch.manual_seed(0)
    net = nets.SeedCNN((8, 8))
    x = torch.randn(2, 1, 28, 28)
    assert not torch.allclose(net(x, torch.tensor([0.1, 0.1])), net(x, torch.tensor([0.9, 0.9])))
