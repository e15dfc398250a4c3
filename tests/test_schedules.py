import math

import pytest
import torch

from mnistdiff.processes import schedules


@pytest.mark.parametrize("t", [0, 1, 2, 10, 500, 999, 1000])
def test_linear_matches_the_report_formula(t):
    s = schedules.linear(1e-4, 0.02, 1000)
    beta_t = 1e-4 + (0.02 - 1e-4) * t / 1000
    assert s.betas[t].item() == pytest.approx(beta_t, rel=1e-6)
    alpha_bar = math.prod(1 - (1e-4 + (0.02 - 1e-4) * u / 1000) for u in range(t + 1))
    assert s.alphas_cumprod[t].item() == pytest.approx(alpha_bar, rel=1e-5, abs=1e-9)


def test_linear_shapes_and_monotone():
    s = schedules.linear(1e-4, 0.02, 1500)
    assert s.T == 1500 and s.betas.shape == (1501,)
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])
    assert s.alphas_cumprod[-1] < 1e-3  # nearly pure noise at t = T


def test_cosine_ends_near_pure_noise():
    s = schedules.cosine(1000)
    assert torch.all((s.betas > 0) & (s.betas < 1))
    assert s.alphas_cumprod[-1] < 1e-4 and s.alphas_cumprod[1] > 0.999
