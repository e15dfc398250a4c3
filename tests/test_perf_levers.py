"""DDIM (Song et al. 2021) and the speed levers of perf.py: each lever on and off gives the same
results to float rounding. No timings here: speed is measured by benchmarks/run.py."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mnistdiff.training import checkpoint
from mnistdiff import config as C, processes, nets
from mnistdiff.processes import losses, schedules
from mnistdiff.sampling import samplers
from mnistdiff.errors import UserError
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import load_trained
from mnistdiff.training.loop import train

from .conftest import TINY
from mnistdiff import machine
from mnistdiff.training import optim
from mnistdiff.sampling import ddpm


def tiny_net(seed: int = 0) -> nets.SeedCNN:
    torch.manual_seed(seed)
    return nets.SeedCNN(hidden=(4, 8), act="gelu").eval()


class OracleEps(torch.nn.Module):
    """The true eps of a known x0 at every (x_t, t): what a perfect eps-prediction net returns."""

    def __init__(self, x0: torch.Tensor, schedule: schedules.Schedule):
        super().__init__()
        self.x0, self.ab, self.T = x0, schedule.alphas_cumprod.double(), schedule.T

    def forward(self, x_t, t):
        ab = self.ab[(t.double() * self.T).round().long()].view(-1, 1, 1, 1)
        return ((x_t.double() - ab.sqrt() * self.x0.double()) / (1 - ab).sqrt()).float()


# -- DDIM -------------------------------------------------------------------------------------------

def test_ddim_timesteps_span_T_to_1_without_repeats():
    assert ddpm.ddim_timesteps(10, 10) == list(range(10, 0, -1))
    assert ddpm.ddim_timesteps(1000, 1) == [1000]
    for steps in (2, 7, 20, 50, 999):
        taus = ddpm.ddim_timesteps(1000, steps)
        assert len(taus) == steps and taus[0] == 1000 and taus[-1] == 1
        assert all(a > b for a, b in zip(taus, taus[1:]))
    with pytest.raises(UserError, match="steps=0"):
        ddpm.ddim_timesteps(10, 0)
    with pytest.raises(UserError, match="1..10"):
        ddpm.ddim_timesteps(10, 11)


@pytest.mark.parametrize("steps,eta", [(50, 0.0), (7, 0.0), (50, 1.0), (3, 0.5), (1, 0.0)])
def test_ddim_with_oracle_eps_recovers_x0(steps, eta):
    schedule = schedules.linear(1e-4, 0.02, 50)
    x0 = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = ddpm.sample_ddim(OracleEps(x0, schedule), schedule, x_T, steps=steps, eta=eta,
                               generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_ddim_eta0_is_deterministic_given_x_T_and_eta1_uses_the_generator():
    schedule = schedules.linear(1e-4, 0.02, 20)
    net = tiny_net()
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a = ddpm.sample_ddim(net, schedule, x_T, steps=20, eta=0.0, generator=torch.Generator().manual_seed(1))
    b = ddpm.sample_ddim(net, schedule, x_T, steps=20, eta=0.0, generator=torch.Generator().manual_seed(9))
    assert a.shape == x_T.shape and torch.equal(a, b)
    c = ddpm.sample_ddim(net, schedule, x_T, steps=20, eta=1.0, generator=torch.Generator().manual_seed(1))
    d = ddpm.sample_ddim(net, schedule, x_T, steps=20, eta=1.0, generator=torch.Generator().manual_seed(1))
    e = ddpm.sample_ddim(net, schedule, x_T, steps=20, eta=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c, d) and not torch.allclose(c, e)


def test_ddim_step_with_eta1_is_the_ddpm_posterior():
    """eta = 1, s = t - 1: mean of Ho et al.'s Algorithm 2, variance beta-tilde_t = beta_t (1-a_{t-1})/(1-a_t)."""
    schedule = schedules.linear(1e-4, 0.02, 100)
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(2, 1, 28, 28, generator=g, dtype=torch.float64) for _ in range(3))
    ab, betas = schedule.alphas_cumprod.double(), schedule.betas.double()
    for t in (2, 40, 100):
        a_t, a_s = ab[t].item(), ab[t - 1].item()
        # betas and alphas_cumprod are stored separately in float32: derive beta_t from them for the check
        beta = 1 - a_t / a_s
        mean, _ = ddpm.ddim_step(x_t, eps, a_t, a_s, 1.0, None)
        ddpm_mean = (x_t - beta / math.sqrt(1 - a_t) * eps) / math.sqrt(1 - beta)
        torch.testing.assert_close(mean, ddpm_mean, atol=1e-9, rtol=1e-9)
        noisy, _ = ddpm.ddim_step(x_t, eps, a_t, a_s, 1.0, z)
        beta_tilde = beta * (1 - a_s) / (1 - a_t)
        torch.testing.assert_close(noisy - mean, math.sqrt(beta_tilde) * z, atol=1e-9, rtol=1e-9)
        assert abs(beta - betas[t].item()) < 1e-6


def test_ddim_callback_sees_every_step_with_x_t_before_the_update():
    schedule = schedules.linear(1e-4, 0.02, 30)
    seen = []
    x_T = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    ddpm.sample_ddim(tiny_net(), schedule, x_T, steps=5, callback=lambda t, x, x0: seen.append((t, x)))
    assert [t for t, _ in seen] == ddpm.ddim_timesteps(30, 5)
    assert torch.equal(seen[0][1], x_T)


def test_ddim_is_registered_and_its_options_are_checked():
    ddpm = processes.build(C.Config().process)  # T = 1000
    assert "ddim" in samplers.SAMPLERS and samplers.SAMPLERS["ddim"].serves == ("schedule",)
    assert samplers.check_options("ddim", {"steps": 10, "eta": None}, ddpm) == {"steps": 10}
    with pytest.raises(UserError, match="does not take --steps"):
        samplers.check_options("ddpm", {"steps": 10}, ddpm)
    with pytest.raises(UserError, match="steps=2000"):
        samplers.check_options("ddim", {"steps": 2000}, ddpm)
    with pytest.raises(UserError, match="eta=-1"):
        samplers.check_options("ddim", {"eta": -1.0}, ddpm)
    # DPM-Solver++(2M) serves both noise families: its steps are DDIM's timesteps for a DDPM (at most T),
    # Karras sigmas (any count) for EDM.
    edm = processes.build(C.apply(C.Config(), {"degradation": "edm", "prediction": "x0"}).process)
    assert samplers.check_options("dpm++2m", {"steps": 2000}, edm) == {"steps": 2000}
    with pytest.raises(UserError, match="steps=2000"):
        samplers.check_options("dpm++2m", {"steps": 2000}, ddpm)
    assert {"ddim", "dpm++2m"} <= set(samplers.serving("schedule")) and "dpm++2m" in samplers.serving("sigma")


def test_generate_passes_ddim_options_through():
    cfg = C.apply(C.Config(), {"T": 20, "hidden": (4, 8)})
    degradation = processes.build(cfg.process)
    net = tiny_net()
    a = generate(net, degradation, cfg, 3, seed=0, sampler="ddim", sampler_options={"steps": 5, "eta": 0.0})
    b = generate(net, degradation, cfg, 3, seed=0, sampler="ddim", sampler_options={"steps": 20, "eta": 0.0})
    assert a.shape == (3, 28, 28) and a.dtype == torch.uint8 and not torch.equal(a, b)


# -- levers: on and off agree -------------------------------------------------------------------------

def _train_steps(tc_overrides: dict, steps: int = 3) -> tuple[list[float], dict, torch.nn.Module, torch.optim.Optimizer]:
    cfg = C.apply(C.Config(), {"T": 50, "hidden": (4, 8), **tc_overrides})
    torch.manual_seed(0)
    net = nets.build(cfg.model)
    degradation = processes.build(cfg.process)
    net = optim.prepare(net, cfg.train)
    opt = optim.optimizer(net, cfg.train)
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(steps):
        x0 = torch.rand(8, 1, 28, 28, generator=g) - 0.5
        t = torch.randint(1, 51, (8,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        loss = losses.diffusion_loss(net, degradation, x0, t, noise).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out, {k: v.detach().contiguous() for k, v in net.state_dict().items()}, net, opt


# lever -> how to see that it is on (else "the same steps" could compare the baseline with itself)
LEVER_ON = {
    "channels_last": lambda net, opt: net.blocks[1].conv.weight.is_contiguous(memory_format=torch.channels_last),
    "fused": lambda net, opt: opt.defaults["fused"] is True,
    "foreach": lambda net, opt: opt.defaults["foreach"] is True,
}


@pytest.mark.parametrize("lever, on", [({"channels_last": True}, "channels_last"), ({"adam": "fused"}, "fused"),
                                       ({"adam": "foreach"}, "foreach")])
def test_training_levers_give_the_same_steps(lever, on):
    base_losses, base_weights, base_net, base_opt = _train_steps({"adam": "for-loop"})
    losses_, weights, net, opt = _train_steps(lever)
    assert LEVER_ON[on](net, opt) and not LEVER_ON[on](base_net, base_opt)
    assert losses_ == pytest.approx(base_losses, rel=1e-5)
    for k in base_weights:
        torch.testing.assert_close(weights[k], base_weights[k], atol=1e-5, rtol=1e-4)


def test_channels_last_net_predicts_the_same_and_checkpoints_contiguously():
    net = tiny_net()
    fast = optim.prepare(copy.deepcopy(net), C.apply(C.Config(), {"channels_last": True}).train)
    assert fast.blocks[1].conv.weight.is_contiguous(memory_format=torch.channels_last)
    x, t = torch.randn(4, 1, 28, 28), torch.rand(4)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x, t), net(x, t), atol=1e-5, rtol=1e-4)
    tensors = optim.contiguous(checkpoint.model_tensors(fast))
    assert all(v.is_contiguous() for v in tensors.values())


def test_threads_lever_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        machine.set_threads(1)
        assert torch.get_num_threads() == 1
        machine.set_threads(0)  # 0 keeps the current setting
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_lever_fields_are_config_choices():
    with pytest.raises(UserError, match="unknown adam"):
        C.validate(C.apply(C.Config(), {"adam": "sgd"}))
    with pytest.raises(UserError, match="channels_last"):
        C.apply(C.Config(), {"channels_last": "maybe"})


def test_channels_last_run_trains_resumes_and_samples(tmp_path, data_dir):
    """A run with the layout lever on writes loadable checkpoints, and sampling rebuilds the lever."""
    cfg = C.apply(C.Config(), {**TINY, "channels_last": True, "adam": "fused", "epochs": 1})
    train(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    cfg2, net, degradation = load_trained(tmp_path / "run")
    # load_trained evaluates the net in chunks of rows (runtime.Chunked): the trained net is inside
    assert cfg2.train.channels_last and net.net.blocks[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = generate(net, degradation, cfg2, 2, seed=0, sampler="ddim", sampler_options={"steps": 4})
    assert images.shape == (2, 28, 28)
