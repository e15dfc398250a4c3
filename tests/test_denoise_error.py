"""scripts/denoise_error.py: exact on an oracle net, a table for real runs, one-line refusals."""

import importlib.util

import torch

from mnistdiff import config as C, data, processes
from mnistdiff.training import loop as T

from .conftest import ROOT, TINY


def _script():
    spec = importlib.util.spec_from_file_location("denoise_error", ROOT / "scripts" / "denoise_error.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_oracle_net_has_no_denoising_error_and_a_zero_net_has_the_noise_variance(tiny_cfg):
    degradation = processes.build(tiny_cfg.process)
    schedule = degradation.schedule
    x0 = data.to_model_range(data.load_split("test").images[:16])

    def oracle(x_t, t):  # knows x0, so recovers the noise exactly
        a = schedule.alphas_cumprod[round(t[0].item() * schedule.T)]
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    script = _script()
    assert all(mse < 1e-8 and rms < 1e-4 for mse, rms in script.errors(oracle, degradation, x0, [1, 10, 20]))
    (mse, rms), = script.errors(lambda x_t, t: torch.zeros_like(x_t), degradation, x0, [20])
    a = schedule.alphas_cumprod[20]
    assert abs(mse - 1) < 0.05 and abs(rms - ((1 - a) / a * mse).sqrt().item()) < 1e-6


def test_denoise_error_tables_real_runs_and_refuses_bad_input(tmp_path, capsys):
    script = _script()
    run = tmp_path / "ddpm"
    T.train(C.apply(C.preset("ddpm-default"), {**TINY, "epochs": 1}), run, progress=False)
    assert script.main([str(run), str(run), "-n", "8", "--t", "1,20"]) == 0
    out = capsys.readouterr().out
    assert "first 8 MNIST test digits" in out and out.count("ddpm: eps MSE") == 2
    rows = [line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 20 |")]
    assert len(rows) == 2 and all(len(r.split("|")) == 7 for r in rows)
    for args, message in [([str(run), "--t", "0,5"], "must lie in 1..20"), ([str(run), "--t", "a"], "must list integers"),
                          ([str(tmp_path / "none")], "")]:
        assert script.main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("denoise_error.py: error:") and message in err
