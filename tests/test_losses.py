"""The training objective's values, checked against numbers computed by hand from the schedule, and the
gaussian options swept together (schedule x prediction x sampler), as diffusers' check_over_configs does."""

import math

import pytest
import torch

from mnistdiff import config as C, nets, processes
from mnistdiff.processes import losses, predictions, schedules
from mnistdiff.sampling import samplers

T = 10
X0, EPS = 0.25, -1.5  # constant images: every pixel of x0 and of the noise


def _alpha_bar(t: int) -> float:
    """alpha_bar_t of the linear schedule, by hand: prod over s <= t of (1 - beta_s)."""
    betas = [1e-4 + (0.02 - 1e-4) * s / T for s in range(T + 1)]
    return math.prod(1 - b for b in betas[:t + 1])


class Constant(torch.nn.Module):
    """A 'net' that outputs the same value everywhere, whatever it is shown."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x, t):
        return torch.full_like(x, self.value)


def _loss(prediction: str, norm: str = "mse", min_snr: float = 0.0, out: float = 0.1, t: int = 3) -> float:
    process = processes.GaussianNoise(schedules.linear(1e-4, 0.02, T))
    x0, noise = torch.full((1, 1, 28, 28), X0), torch.full((1, 1, 28, 28), EPS)
    value = losses.diffusion_loss(Constant(out), process, x0, torch.tensor([t]), noise, prediction=prediction,
                                  norm=norm, min_snr=min_snr)
    assert value.shape == (1,)
    return value.item()


def _target(prediction: str, t: int = 3) -> float:
    a, s = math.sqrt(_alpha_bar(t)), math.sqrt(1 - _alpha_bar(t))
    return {"eps": EPS, "x0": X0, "v": a * EPS - s * X0}[prediction]  # v: Salimans & Ho 2022, eq. 9


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_mse_and_l1_loss_of_each_target_equal_the_hand_computed_value(prediction):
    assert _loss(prediction) == pytest.approx((0.1 - _target(prediction)) ** 2, rel=1e-5)
    assert _loss(prediction, norm="l1") == pytest.approx(abs(0.1 - _target(prediction)), rel=1e-5)


@pytest.mark.parametrize("prediction, weight", [
    ("eps", lambda snr, g: min(snr, g) / snr), ("x0", lambda snr, g: min(snr, g)),
    ("v", lambda snr, g: min(snr, g) / (snr + 1))])
@pytest.mark.parametrize("t", [1, 9])  # SNR far above gamma = 5 at t = 1, below it at t = 9
def test_min_snr_weights_the_loss_as_hang_et_al(prediction, weight, t):
    snr = _alpha_bar(t) / (1 - _alpha_bar(t))
    expected = (0.1 - _target(prediction, t)) ** 2 * weight(snr, 5.0)
    assert _loss(prediction, min_snr=5.0, t=t) == pytest.approx(expected, rel=1e-4)


def test_cold_loss_is_the_restoration_error_of_x0():
    process = processes.RowAveraging(group=4)
    x0 = torch.arange(784.0).view(1, 1, 28, 28) / 784
    value = losses.diffusion_loss(Constant(0.5), process, x0, torch.tensor([7]), torch.zeros_like(x0),
                                  prediction="x0", norm="l1")
    assert value.item() == pytest.approx((0.5 - x0).abs().mean().item(), rel=1e-6)


class ExactNet(torch.nn.Module):
    """Outputs the exact target of x_t for a known x0 (eps, x0 or v), as a perfectly trained net would."""

    def __init__(self, process, prediction, x0):
        super().__init__()
        self.process, self.prediction, self.x0 = process, prediction, x0

    def forward(self, x_t, t):
        a, s = self.process.coefficients((t * self.process.T).round().long())
        return predictions.target(self.prediction, self.x0, (x_t - a * self.x0) / s, a, s)


@pytest.mark.parametrize("schedule", list(schedules.SCHEDULES))
@pytest.mark.parametrize("prediction", list(predictions.PREDICTIONS))
@pytest.mark.parametrize("sampler", samplers.serving("schedule"))
def test_gaussian_options_together_train_and_sample(schedule, prediction, sampler):
    """Every schedule x prediction x sampler: a training step is finite, a tiny net samples finite images
    of the right shape, and an exact net lands on x0 (ancestral sampling to within its last step's noise)."""
    cfg = C.validate(C.apply(C.Config(), {"T": 20, "schedule": schedule, "prediction": prediction, "min_snr": 5.0,
                                          "hidden": (4,)}))
    process = processes.build(cfg.process)
    torch.manual_seed(0)
    net = nets.build(cfg.model)
    x0 = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    loss = losses.diffusion_loss(net, process, x0, process.sample_t(2, torch.Generator().manual_seed(1)),
                                 torch.randn_like(x0), prediction=prediction, min_snr=cfg.process.min_snr)
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    options = {"steps": 5} if "steps" in samplers.SAMPLERS[sampler].options else {}
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    out = samplers.SAMPLERS[sampler](predictions.for_sampling(net.eval(), prediction, process), process, x_T,
                                     generator=torch.Generator().manual_seed(3), **options)
    assert out.shape == x_T.shape and torch.isfinite(out).all()
    exact = predictions.for_sampling(ExactNet(process, prediction, x0), prediction, process)
    out = samplers.SAMPLERS[sampler](exact, process, x_T, generator=torch.Generator().manual_seed(3), **options)
    error = (out - x0).abs()  # x_T starts about 0.8 from x0 on average
    if sampler == "ddim":  # deterministic: exact to float rounding
        assert error.max() < 1e-3
    else:  # the ancestral noise of the steps before the last (large for cosine at T = 20) stays in
        assert error.mean() < 0.1
