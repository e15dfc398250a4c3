import json
import warnings

import torch

from mnistdiff import config as C, nets, processes
from mnistdiff.training import loop as T
from mnistdiff.processes import schedules
from mnistdiff.hooks import epoch_hooks
from mnistdiff.sampling import epoch_grid
from mnistdiff import machine
from mnistdiff.sampling import ddpm
from mnistdiff.training import rundir
from mnistdiff.training.checkpoint import store


def test_loss_falls_over_a_few_hundred_steps(tmp_path):
    cfg = C.apply(C.preset("ddpm-default"), dict(subset=4800, epochs=1, T=100, batch_size=16, hidden=(8, 8),
                                                 lr=2e-3, sample_epochs=()))
    T.train(cfg, tmp_path / "run", progress=False, stop_after_steps=300)
    losses = [r["loss"] for r in rundir.read_metrics(tmp_path / "run") if r["type"] == "iter"]
    assert len(losses) == 300
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert last < 0.6 * first, (first, last)


def test_ddpm_sampler_is_deterministic_with_a_generator():
    torch.manual_seed(0)
    net = nets.SeedCNN((8, 8)).eval()
    sched = schedules.linear(1e-4, 0.02, 20)
    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    a = ddpm.sample_ddpm(net, sched, x_T, generator=torch.Generator().manual_seed(5))
    b = ddpm.sample_ddpm(net, sched, x_T, generator=torch.Generator().manual_seed(5))
    c = ddpm.sample_ddpm(net, sched, x_T, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


class OracleEps(torch.nn.Module):
    """Predicts the exact noise of x_t for a known x0: the sampler must then land on x0."""

    def __init__(self, x0, schedule):
        super().__init__()
        self.x0, self.s = x0, schedule

    def forward(self, x_t, t):
        i = round(t[0].item() * self.s.T)
        ab = self.s.alphas_cumprod[i]
        return (x_t - ab.sqrt() * self.x0) / (1 - ab).sqrt()


def test_ddpm_with_an_oracle_recovers_x0_and_adds_no_noise_at_the_last_step():
    sched = schedules.linear(1e-4, 0.02, 50)
    x0 = torch.rand(2, 1, 28, 28) - 0.5
    x_T = torch.randn(2, 1, 28, 28)
    out = ddpm.sample_ddpm(OracleEps(x0, sched), sched, x_T, generator=torch.Generator().manual_seed(0))
    # The posterior mean with the true eps, plus sigma_t z at t > 1; no noise at t = 1 leaves only the
    # last step's deterministic error, which is small relative to the noise scale sqrt(beta_1).
    assert (out - x0).abs().max() < 0.05


def test_degrade_at_zero_is_identity_and_noise_grows():
    deg = processes.build(C.Config().process)
    x0 = torch.rand(3, 1, 28, 28) - 0.5
    noise = torch.randn_like(x0)
    assert torch.equal(deg.degrade(x0, torch.zeros(3, dtype=torch.long), noise), x0)
    x_T = deg.degrade(x0, torch.full((3,), 1000), noise)
    assert torch.allclose(x_T, noise, atol=0.01)


def test_epoch_grids_use_the_same_noise(tmp_path, tiny_cfg, monkeypatch):
    """Each epoch's grid starts from the same x_T and draws the same sampling noise (a fixed generator),
    so grids of successive epochs differ only by the net."""
    draws = []
    real_draw = epoch_grid.starts.draw

    def draw(*args, generator, **kw):
        x_T = real_draw(*args, generator=generator, **kw)
        draws.append((x_T.clone(), generator.get_state().clone()))  # the state the sampler's noise comes from
        return x_T

    monkeypatch.setattr(epoch_grid.starts, "draw", draw)
    cfg = C.apply(tiny_cfg, dict(sample_epochs=(1, 2)))
    T.train(cfg, tmp_path / "run", progress=False, hooks=[epoch_grid.save_epoch_grid])
    assert len(draws) == 2
    assert torch.equal(draws[0][0], draws[1][0]) and torch.equal(draws[0][1], draws[1][1])
    assert (tmp_path / "run/samples/epoch_0001.png").exists() and (tmp_path / "run/samples/epoch_0002.png").exists()
    saved = json.loads((tmp_path / "run/config.json").read_text())
    assert C.from_dict(saved) == machine.resolve_precision(cfg)[0]  # config.json records what precision auto chose


def test_training_only_trains_and_calls_its_epoch_hooks(tmp_path, tiny_cfg):
    """Training alone writes checkpoints, snapshots and metrics.jsonl; grids and figures come from the hooks the
    front ends wire (mnistdiff.hooks), each called once per epoch with that epoch's end."""
    T.train(tiny_cfg, tmp_path / "bare", progress=False)
    assert not any((tmp_path / "bare/figures").iterdir()) and not any((tmp_path / "bare/samples").iterdir())
    assert store.snapshots(tmp_path / "bare").keys() == {1, 2}
    calls = []
    T.train(tiny_cfg, tmp_path / "hooked", progress=False, hooks=[lambda end: calls.append(
        (end.run, end.epoch, end.step, end.final, end.is_main, end.keeps_snapshot))])
    steps = [r["step"] for r in rundir.read_metrics(tmp_path / "hooked") if r["type"] == "epoch"]
    assert calls == [(tmp_path / "hooked", 1, steps[0], False, True, True), (tmp_path / "hooked", 2, steps[1], True, True, True)]
    T.train(tiny_cfg, tmp_path / "drawn", progress=False, hooks=epoch_hooks(tiny_cfg))
    assert (tmp_path / "drawn/figures/loss.png").stat().st_size > 1000
    assert (tmp_path / "drawn/samples/epoch_0002.png").is_file()


def test_bf16_autocast_runs_on_the_device_of_the_run(tmp_path, tiny_cfg, monkeypatch):
    """--precision bf16 must autocast where the run trains: a GPU run autocast on "cpu" trains in fp32."""
    cfg = C.apply(tiny_cfg, {"precision": "bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no GPU here: torch warns and disables the cuda autocast
        assert T.autocast(cfg, torch.device("cuda")).device == "cuda"
    with T.autocast(cfg, torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with T.autocast(C.apply(cfg, {"precision": "fp32"}), torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    seen = []
    real = T.autocast
    monkeypatch.setattr(T, "autocast", lambda c, device: seen.append(device) or real(c, device))
    T.train(cfg, tmp_path / "run", progress=False, stop_after_steps=1)
    assert seen == [T.dist.context().device]


def test_a_resume_may_change_the_precision_and_says_so(tmp_path, capsys):
    """A run moved to a CPU without native bf16 continues in fp32 (not 15x slower); the log records the step."""
    from mnistdiff import cli as cli_mod

    run = tmp_path / "run"
    flags = ["--subset", "64", "--T", "10", "--hidden", "8", "--batch-size", "32", "--sample-epochs", "", "--quiet"]
    assert cli_mod.main(["train", "--preset", "ddpm-default", "--run", str(run), "--epochs", "1",
                         "--precision", "bf16", *flags[:-1], "--quiet"]) == 0
    assert cli_mod.main(["train", "--resume", str(run), "--epochs", "2", "--precision", "fp32", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "precision bf16 -> fp32 from step 2" in err
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "fp32"
    events = [r for r in rundir.read_metrics(run) if r["type"] == "event"]
    assert events == [{"type": "event", "event": "precision", "epoch": 1, "step": 2, "before": "bf16", "after": "fp32"}]
    assert cli_mod.main(["sample", str(run / "checkpoints" / "prev.safetensors"), "-n", "2", "--out",
                         str(tmp_path / "x.png")]) == 0  # a bf16-era checkpoint still belongs to the run
