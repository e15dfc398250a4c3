"""The EDM process (edm.py): preconditioning, loss, samplers against exact denoisers, and the CLI."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from mnistdiff import config as C, nets, processes
from mnistdiff.processes import edm
from mnistdiff.errors import UserError

from .conftest import main, tiny_flags
from mnistdiff.sampling import karras


class ExactNet(nn.Module):
    """The F that makes D(x; sigma) the exact posterior mean of per-pixel N(mu, s^2) data:
    D = mu + s^2 / (s^2 + sigma^2) (x - mu). It reads sigma back from the time input."""

    def __init__(self, process, mu, s):
        super().__init__()
        self.process, self.mu, self.s = process, mu, s

    def forward(self, x_in, t):
        sigma = edm.sigma_of(t.double()).view(-1, 1, 1, 1)
        c_skip, c_out, c_in = self.process.preconditioning(sigma)
        x = x_in.double() / c_in
        d = self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu)
        return ((d - c_skip * x) / c_out).float()


def test_preconditioning_limits_and_unit_variance():
    p = processes.EDMNoise(sigma_data=0.5)
    c_skip, c_out, c_in = p.preconditioning(torch.tensor([1e-4, 0.5, 1e4]))
    assert c_skip[0].item() == pytest.approx(1, abs=1e-6) and c_out[0].item() == pytest.approx(1e-4, rel=1e-3)
    assert c_skip[2].item() == pytest.approx(0, abs=1e-6) and c_out[2].item() == pytest.approx(0.5, rel=1e-3)
    # the effective target (x0 - c_skip x) / c_out has unit variance when x0 has std sigma_data
    g = torch.Generator().manual_seed(0)
    x0, n = 0.5 * torch.randn(20000, generator=g), torch.randn(20000, generator=g)
    for sigma in (0.05, 0.5, 5.0):
        cs, co, ci = (c.flatten() for c in p.preconditioning(torch.tensor([sigma])))
        x = x0 + sigma * n
        assert ((x0 - cs * x) / co).std().item() == pytest.approx(1, abs=0.03)
        assert (ci * x).std().item() == pytest.approx(1, abs=0.03)


def test_time_maps_sigma_range_to_unit_interval_and_degrade_is_variance_preserving():
    assert edm.time_of(torch.tensor([edm.SIGMA_MIN, edm.SIGMA_MAX])).tolist() == pytest.approx([0, 1], abs=1e-6)
    assert edm.sigma_of(edm.time_of(torch.tensor([0.3]))).item() == pytest.approx(0.3, rel=1e-5)
    p = processes.EDMNoise()
    x0, n = torch.full((2, 1, 28, 28), 0.5), torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x = p.degrade(x0, torch.tensor([1, 1]), n)  # t = T: sigma_max, as a conditional start asks
    assert torch.allclose(x, (x0 + 80 * n) / math.sqrt(1 + 80**2), atol=1e-6)


def test_training_sigmas_are_log_normal():
    p = processes.EDMNoise(p_mean=-1.2, p_std=1.2)
    log_sigma = torch.log(edm.sigma_of(p.sample_t(50_000, torch.Generator().manual_seed(0))))
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.03)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.03)


def test_loss_is_lambda_weighted_denoising_error():
    """Their eq. 2 with lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2, computed the long way."""
    torch.manual_seed(0)
    p = processes.EDMNoise(sigma_data=0.5)
    net = nn.Conv2d(1, 1, 3, padding=1)
    f = lambda x, t: net(x) + t.view(-1, 1, 1, 1)  # noqa: E731 - any net that uses both inputs
    x0, noise = torch.rand(3, 1, 28, 28) - 0.5, torch.randn(3, 1, 28, 28)
    t = edm.time_of(torch.tensor([0.01, 0.7, 20.0]))
    got = p.loss(f, x0, t, noise)
    sigma = edm.sigma_of(t)
    d = p.denoise(f, x0 + sigma.view(-1, 1, 1, 1) * noise, sigma)
    lam = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    assert torch.allclose(got, lam * (d - x0).square().flatten(1).mean(1), rtol=1e-4)
    l1 = p.loss(f, x0, t, noise, norm="l1")
    assert torch.allclose(l1, lam.sqrt() * (d - x0).abs().flatten(1).mean(1), rtol=1e-4)


@pytest.mark.parametrize("sampler", [karras.sample_heun, karras.sample_dpmpp_2m])
def test_samplers_carry_noise_to_the_data_distribution_with_an_exact_denoiser(sampler):
    """Per-pixel N(mu, s^2) data: the probability-flow ODE maps the start to exactly that law, so the
    samples' std converges to s as steps grow (a wrong step size, sign or order stalls or diverges)."""
    mu, s = -0.3, 0.2
    p = processes.EDMNoise(sigma_data=0.5)
    x_T = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (18, 50, 200):
        x = sampler(ExactNet(p, mu, s), p, x_T, steps=steps)
        assert x.mean().item() == pytest.approx(mu, abs=0.01)
        errors.append(abs(x.std().item() / s - 1))
    # measured: 7.3%, 0.8%, 0.04% (heun); 7.6%, 0.8%, 0.04% (dpm++2m): second order in the step count
    assert errors[0] < 0.1 and errors[1] < 0.015 and errors[2] < 0.002
    assert errors[2] < errors[1] / 5 < errors[0] / 5


def test_stochastic_heun_also_reaches_the_data_law_and_is_seeded():
    """--churn (Karras et al.'s Algorithm 2): noise added back inside [S_TMIN, S_TMAX] and solved away again,
    so with an exact denoiser the samples still follow the data law; churn 0 is Algorithm 1 bit for bit,
    and the added noise comes from the generator (same seed, same images)."""
    mu, s = -0.3, 0.2
    p = processes.EDMNoise(sigma_data=0.5)
    net = ExactNet(p, mu, s)
    x_T = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    g = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    assert torch.equal(karras.sample_heun(net, p, x_T, steps=18, churn=0.0, generator=g(1)),
                       karras.sample_heun(net, p, x_T, steps=18))
    x = karras.sample_heun(net, p, x_T, steps=50, churn=20.0, generator=g(1))
    x200 = karras.sample_heun(net, p, x_T, steps=200, churn=20.0, generator=g(1))
    # measured std errors: 3.7% at 50 steps, 0.67% at 200 (Algorithm 1: 0.8%, 0.04%): it converges, slower
    assert x200.mean().item() == pytest.approx(mu, abs=0.01) and x200.std().item() == pytest.approx(s, rel=0.01)
    assert abs(x200.std().item() / s - 1) < abs(x.std().item() / s - 1) / 3
    assert torch.equal(x, karras.sample_heun(net, p, x_T, steps=50, churn=20.0, generator=g(1)))
    assert not torch.equal(x, karras.sample_heun(net, p, x_T, steps=50, churn=20.0, generator=g(2)))
    # gamma: churn / steps, capped at sqrt 2 - 1 (variance at most doubled), zero outside [S_TMIN, S_TMAX]
    assert karras.churn_gamma(5.0, 50, 1.0) == pytest.approx(0.1)
    assert karras.churn_gamma(40.0, 18, 1.0) == pytest.approx(math.sqrt(2) - 1)
    assert karras.churn_gamma(40.0, 18, 0.01) == karras.churn_gamma(40.0, 18, 80.0) == karras.churn_gamma(0.0, 18, 1.0) == 0.0


@pytest.mark.parametrize("steps", [5, 20])
def test_dpmpp_2m_gives_diffusers_edm_dpm_solver_images(steps):
    import sys

    from .conftest import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers

    torch.manual_seed(0)  # an untrained net with a non-zero output: any fixed F checks the arithmetic
    net = nets.build(C.apply(C.preset("ddpm-default"), {"hidden": (8, 8)}).model).eval()
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    ours = karras.sample_dpmpp_2m(net, processes.EDMNoise(sigma_data=0.5), x_T, steps=steps)
    theirs = peers.diffusers_edm_dpmpp_2m(net, x_T, steps, sigma_data=0.5)
    assert (ours - theirs).abs().max() < 1e-4 * ours.abs().max()
    other = karras.sample_dpmpp_2m(net, processes.EDMNoise(sigma_data=0.4), x_T, steps=steps)
    assert (ours - other).abs().max() > 1e-2


def test_karras_sigmas():
    s = edm.karras_sigmas(18)
    assert len(s) == 19 and s[0] == pytest.approx(80) and s[-2] == pytest.approx(0.002) and s[-1] == 0
    assert all(a > b for a, b in zip(s, s[1:]))
    with pytest.raises(Exception, match="steps=0"):
        edm.karras_sigmas(0)


def test_config_checks():
    base = C.preset("quick-unet")
    C.validate(base)
    assert isinstance(processes.build(base.process), processes.EDMNoise)
    for bad, match in (({"prediction": "eps"}, "prediction"), ({"min_snr": 5.0}, "min_snr"),
                       ({"sigma_data": 0.0}, "sigma_data"), ({"p_std": -1.0}, "p_std")):
        with pytest.raises(UserError, match=match):
            C.validate(C.apply(base, bad))


EDM_FLAGS = ["--degradation", "edm", "--prediction", "x0", "--net", "unet", "--hidden", "8,16"]


def test_edm_run_trains_samples_and_refuses_ddpm_samplers(tmp_path):
    run = tmp_path / "edm"
    r = main("train", "--run", run, *tiny_flags(), *EDM_FLAGS)
    assert r.returncode == 0, r.stderr
    out = {}
    for sampler, steps in (("heun", "4"), ("dpm++2m", "6")):
        r = main("sample", run, "-n", "4", "--sampler", sampler, "--steps", steps, "--runtime", "torch")
        assert r.returncode == 0, r.stderr
        out[sampler] = np.load(run / "samples" / f"sample-{sampler}-steps{steps}-n4-seed0.npy")
    assert out["heun"].shape == (4, 28, 28) and (out["heun"] != out["dpm++2m"]).any()
    r = main("sample", run, "-n", "4", "--steps", "4", "--churn", "10", "--runtime", "torch")
    assert r.returncode == 0, r.stderr
    assert (np.load(run / "samples" / "sample-heun-steps4-churn10.0-n4-seed0.npy") != out["heun"]).any()
    for bad, says in ((["--churn", "-1"], "churn=-1.0 must be between 0"),
                      (["--sampler", "dpm++2m", "--churn", "5"], "does not take --churn")):
        r = main("sample", run, "-n", "4", *bad, "--runtime", "torch")
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    for command in ("sample", "evaluate"):
        r = main(command, run, "-n", "10", "--sampler", "ddim", "--runtime", "torch")
        assert r.returncode == 2 and "--sampler heun|dpm++2m" in r.stderr and "Traceback" not in r.stderr
    r = main("train", "--run", tmp_path / "bad", *tiny_flags(), *EDM_FLAGS[:2], "--prediction", "eps")
    assert r.returncode == 2 and "--prediction x0" in r.stderr and not (tmp_path / "bad").exists()
    ddpm = tmp_path / "ddpm"
    assert main("train", "--run", ddpm, *tiny_flags()).returncode == 0
    r = main("sample", ddpm, "-n", "4", "--sampler", "heun", "--runtime", "torch")
    assert r.returncode == 2 and "--sampler ddpm|ddim" in r.stderr and "Traceback" not in r.stderr


def test_dpm_solver_clip_keeps_every_estimate_in_the_data_range():
    """--clip for DPM-Solver++(2M) on an EDM run, as for a DDPM: a wild net's samples stay in [-0.5, 0.5]
    with it, and leave that range without it."""
    process = processes.EDMNoise(sigma_data=0.5)
    wild = lambda x, t: 100 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))  # noqa: E731
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    assert karras.sample_dpmpp_2m(wild, process, x_T, steps=5).abs().max() > 1
    assert karras.sample_dpmpp_2m(wild, process, x_T, steps=5, clip=True).abs().max() <= 0.5
