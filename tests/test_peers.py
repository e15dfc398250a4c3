"""mnistdiff's samplers against diffusers' schedulers driving the same net, schedule and noise: the
images agree to float rounding. benchmarks/run.py times the DDPM pairing; these check it is fair."""

import sys

import pytest
import torch

from mnistdiff import processes, nets

from .conftest import ROOT, main, tiny_flags

sys.path.insert(0, str(ROOT / "benchmarks"))
import peers  # noqa: E402
from mnistdiff.sampling import ddpm


@pytest.fixture
def net_and_schedule(tiny_cfg):
    torch.manual_seed(0)  # an untrained net: any fixed eps function checks the samplers' arithmetic
    return nets.build(tiny_cfg.model).eval(), processes.build(tiny_cfg.process).schedule


def _x_T(n=3):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(5))


def test_ddpm_gives_diffusers_ddpm_scheduler_images(net_and_schedule):
    net, schedule = net_and_schedule
    ours = ddpm.sample_ddpm(net, schedule, _x_T(), generator=torch.Generator().manual_seed(1))
    theirs = peers.diffusers_sample(net, peers.diffusers_scheduler(schedule), _x_T(), torch.Generator().manual_seed(1))
    assert (ours - theirs).abs().max() < 1e-4
    assert (ours - ddpm.sample_ddpm(net, schedule, _x_T(), generator=torch.Generator().manual_seed(2))).abs().max() > 1e-2


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_on_every_timestep_gives_diffusers_ddim_scheduler_images(net_and_schedule, eta):
    net, schedule = net_and_schedule
    ours = ddpm.sample_ddim(net, schedule, _x_T(), steps=schedule.T, eta=eta,
                                generator=torch.Generator().manual_seed(1))
    theirs = peers.diffusers_sample(net, peers.diffusers_ddim_scheduler(schedule, schedule.T), _x_T(),
                                    torch.Generator().manual_seed(1), eta=eta)
    assert (ours - theirs).abs().max() < 1e-4


@pytest.mark.parametrize("steps", [5, 20])
def test_dpm_solver_2m_gives_diffusers_dpm_solver_multistep_images(net_and_schedule, steps):
    """DPM-Solver++(2M) for a DDPM: the images of diffusers' DPMSolverMultistepScheduler on the same
    timesteps, and not DDIM's (the second-order correction acts)."""
    net, schedule = net_and_schedule
    ours = ddpm.sample_dpmpp_2m(net, schedule, _x_T(), steps=steps)
    theirs = peers.diffusers_sample(net, peers.diffusers_dpm_scheduler(schedule, steps), _x_T(), None)
    assert (ours - theirs).abs().max() < 1e-4
    assert (ours - ddpm.sample_ddim(net, schedule, _x_T(), steps=steps)).abs().max() > 1e-3


def test_dpm_solver_samples_a_ddpm_run_from_the_cli(tmp_path):
    run = tmp_path / "ddpm"
    assert main("train", "--run", run, *tiny_flags(), "--prediction", "v", "--schedule", "cosine").returncode == 0
    r = main("sample", run, "-n", "4", "--sampler", "dpm++2m", "--steps", "4", "--clip", "--out", tmp_path / "dpm.png")
    assert r.returncode == 0 and (tmp_path / "dpm.png").is_file(), r.stderr
    r = main("sample", run, "-n", "4", "--sampler", "dpm++2m", "--eta", "0.5", "--out", tmp_path / "x.png")
    assert r.returncode == 2 and "does not take --eta" in r.stderr and not (tmp_path / "x.png").exists()
