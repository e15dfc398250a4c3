"""Cold diffusion (issue 4): averaging and blur degradations, Bansal et al. samplers, cold starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnistdiff import cli, config as C, processes as D
from mnistdiff.processes import starts, schedules
from mnistdiff.sampling import samplers
from mnistdiff.report import readers as report_metrics
from mnistdiff.errors import UserError
from mnistdiff.processes import cold
from mnistdiff.sampling import cold as cold_samplers

AVERAGING = [(cls, order, g) for cls in (D.RowAveraging, D.ColumnAveraging)
             for order in ("random", "outside-in", "inside-out") for g in (1, 2, 4, 7)]


def _images(n=6, seed=0) -> torch.Tensor:
    # Continuous random pixels: no row or column is constant, so averaging always changes it.
    return torch.rand((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)) - 0.5


def _t(n, t) -> torch.Tensor:
    return torch.full((n,), t, dtype=torch.long)


def _lines(x: torch.Tensor, axis: str) -> torch.Tensor:
    """(B, 1, 28, 28) -> (B, 28 lines, 28 pixels along the line)."""
    return x[:, 0] if axis == "row" else x[:, 0].transpose(-1, -2)


@pytest.mark.parametrize("cls,order,g", AVERAGING)
def test_degrade_at_zero_is_identity(cls, order, g):
    d = cls(order=order, group=g, order_seed=3)
    x = _images()
    assert d.T == 28 // g
    assert torch.equal(d.degrade(x, _t(6, 0)), x)


@pytest.mark.parametrize("cls,order,g", AVERAGING)
def test_fully_degraded_bands_are_constant_and_equal_the_original_means(cls, order, g):
    d = cls(order=order, group=g)
    x = _images()
    bands = _lines(d.degrade(x, _t(6, d.T)), d.axis).reshape(6, 28 // g, g * 28)
    original = _lines(x, d.axis).reshape(6, 28 // g, g * 28).mean(-1)
    assert torch.equal(bands, bands[..., :1].expand_as(bands))  # one value per band
    torch.testing.assert_close(bands[..., 0], original, rtol=0, atol=1e-6)
    torch.testing.assert_close(d.final_values(x), original, rtol=0, atol=1e-6)
    assert torch.equal(d.from_final_values(d.final_values(x)), d.degrade(x, _t(6, d.T)))


@pytest.mark.parametrize("cls,order,g", AVERAGING)
def test_each_step_averages_exactly_one_more_band_in_order(cls, order, g):
    d = cls(order=order, group=g, order_seed=1)
    x = _images(1)
    lines = _lines(x, d.axis)[0]
    previous = set()
    for t in range(1, d.T + 1):
        changed = {i for i, row in enumerate(_lines(d.degrade(x, _t(1, t)), d.axis)[0])
                   if not torch.equal(row, lines[i])}
        band = int(d.order[t - 1])
        assert changed == previous | set(range(band * g, band * g + g)), t
        previous = changed


@pytest.mark.parametrize("cls", [D.RowAveraging, D.ColumnAveraging, D.GaussianBlur])
def test_batch_with_mixed_t_equals_one_image_at_a_time(cls):
    d = cls(20) if cls is D.GaussianBlur else cls(order="random", group=2)
    x = _images(8)
    t = torch.tensor([0, 1, 2, 3, d.T - 1, d.T, 5, 0])
    one_by_one = torch.cat([d.degrade(x[i:i + 1], t[i:i + 1]) for i in range(8)])
    torch.testing.assert_close(d.degrade(x, t), one_by_one, rtol=0, atol=1e-6)


def test_orders_are_the_reports_patterns():
    assert (cold.order_outside_in(28) + 1).tolist()[:6] == [1, 28, 2, 27, 3, 26]
    assert (cold.order_inside_out(28) + 1).tolist()[:6] == [14, 15, 13, 16, 12, 17]
    assert (cold.order_outside_in(28) + 1).tolist()[-2:] == [14, 15]
    assert (cold.order_inside_out(28) + 1).tolist()[-2:] == [1, 28]
    for n in (28, 14, 7, 4, 2, 1):
        for name, fn in cold.ORDERS.items():
            assert sorted(fn(n, 5).tolist()) == list(range(n)), (name, n)
    assert torch.equal(cold.order_random(28, 7), cold.order_random(28, 7))
    assert not torch.equal(cold.order_random(28, 7), cold.order_random(28, 8))
    assert not torch.equal(cold.order_random(28, 7), torch.arange(28))


def test_blur_goes_from_the_image_to_its_mean():
    d = D.GaussianBlur(10)
    x = _images()
    assert torch.equal(d.degrade(x, _t(6, 0)), x)
    full = d.degrade(x, _t(6, 10))
    torch.testing.assert_close(full, x.mean((1, 2, 3), keepdim=True).expand_as(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(full, d.from_final_values(d.final_values(x)), rtol=0, atol=1e-6)
    spread = [d.degrade(x, _t(6, t)).flatten(1).std(1).mean().item() for t in range(11)]
    assert all(a > b for a, b in zip(spread, spread[1:]))  # each step blurs more


class Oracle(torch.nn.Module):
    """A restorer R that knows the true x0 (what a perfect network would return)."""

    def __init__(self, x0):
        super().__init__()
        self.x0, self.calls = x0, []

    def forward(self, x, t):
        self.calls.append(t[0].item())
        return self.x0.clone()


@pytest.mark.parametrize("d", [D.RowAveraging(order="random"), D.ColumnAveraging(order="inside-out", group=4),
                               D.RowAveraging(order="outside-in", group=7), D.GaussianBlur(12)],
                         ids=["row", "col-g4", "row-g7", "blur"])
@pytest.mark.parametrize("name", ["cold-direct", "cold-alg1", "cold-alg2"])
def test_oracle_restorer_makes_every_algorithm_return_x0_exactly(d, name):
    x0 = _images(4)
    net = Oracle(x0)
    seen = []
    out = samplers.SAMPLERS[name](net, d, d.degrade(x0, _t(4, d.T)), callback=lambda s, x, xh: seen.append(s))
    assert torch.equal(out, x0)
    steps = [d.T] if name == "cold-direct" else list(range(d.T, 0, -1))
    assert seen == steps
    assert net.calls == pytest.approx([s / d.T for s in steps])  # the net sees t / T, as in training


def test_algorithm_2_differs_from_1_when_the_restorer_errs():
    d = D.RowAveraging(order="random")
    x0 = _images(2)
    biased = lambda x, t: x0 + 0.1  # noqa: E731
    x_T = d.degrade(x0, _t(2, d.T))
    a1 = cold_samplers.sample_cold(biased, d, x_T, algorithm="1")
    a2 = cold_samplers.sample_cold(biased, d, x_T, algorithm="2")
    torch.testing.assert_close(a1, x0 + 0.1)  # Algorithm 1 returns R's last guess
    # D is linear and keeps constants, so Algorithm 2's correction cancels a constant bias of R.
    torch.testing.assert_close(a2, x0, rtol=0, atol=1e-5)


def test_config_ties_T_to_the_group_and_refuses_bad_values():
    for name in ("cold-row-random", "cold-col-random", "cold-row-random-g4", "cold-col-random-g4",
                 "cold-row-outside-in", "cold-row-inside-out", "cold-col-outside-in", "cold-col-inside-out",
                 "cold-blur"):
        cfg = C.validate(C.preset(name))
        assert cfg.process.prediction == "x0"
        if cfg.process.degradation != "blur":
            assert cfg.process.T == 28 // cfg.process.group
            assert D.build(cfg.process).T == cfg.process.T
    assert C.preset("cold-row-random").train.epochs == 80 and C.preset("cold-col-random-g4").train.epochs == 60
    base = C.preset("cold-row-random")
    with pytest.raises(UserError, match="must divide 28"):
        C.validate(C.apply(base, {"group": 3}))
    with pytest.raises(UserError, match="--T 7"):
        C.validate(C.apply(base, {"group": 4}))
    with pytest.raises(UserError, match="--prediction x0"):
        C.validate(C.apply(base, {"prediction": "eps"}))
    with pytest.raises(UserError, match="must divide 28"):
        D.RowAveraging(group=5)


def test_cli_bad_group_is_one_line_exit_2(capsys, tmp_path):
    code = cli.main(["train", "--preset", "cold-col-random", "--group", "5", "--run", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "group=5 must divide 28" in err
    assert not (tmp_path / "r").exists()


def test_gmm_fit_and_sampling_are_deterministic_given_a_seed():
    values = D.RowAveraging().final_values(_images(300)).double()
    p1, p2 = starts.fit_gmm(values, components=3, seed=0), starts.fit_gmm(values, components=3, seed=0)
    assert p1 == p2
    draw = lambda seed: starts.sample_gmm(p1, 50, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))
    assert draw(1).shape == (50, 28)


def test_unconditional_starts_are_cached_and_shaped_like_degraded_images(tmp_path, data_dir):
    d = D.ColumnAveraging(group=4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for kind in ("uniform", "gmm"):
        x = starts.draw(kind, d, 12, generator=g(), run=tmp_path, data_dir=data_dir, components=2)
        cached = sorted((tmp_path / "priors").glob(f"{kind}-*.json"))
        assert len(cached) == 1
        assert json.loads(cached[0].read_text())["key"]["fit_images"] == starts.FIT_IMAGES
        again = starts.draw(kind, d, 12, generator=g(), run=tmp_path, data_dir=data_dir, components=2)
        assert torch.equal(x, again)
        # already fully degraded: 7 bands of 4 constant columns
        torch.testing.assert_close(x, d.degrade(x, _t(12, d.T)), rtol=0, atol=1e-6)
        assert x.min() >= -0.5 and x.max() <= 0.5
    params = json.loads(sorted((tmp_path / "priors").glob("uniform-*.json"))[0].read_text())["params"]
    v = d.final_values(starts.draw("uniform", d, 200, generator=g(), run=tmp_path))
    assert (v >= torch.tensor(params["low"]) - 1e-6).all() and (v <= torch.tensor(params["high"]) + 1e-6).all()
    noisy = starts.draw("gmm", d, 12, generator=g(), run=tmp_path, components=2, noise=0.01)
    assert not torch.equal(noisy, d.degrade(noisy, _t(12, d.T)))  # the noise breaks the bands
    with pytest.raises(UserError, match="fitted starts .uniform, gmm. need a process"):
        starts.draw("gmm", D.GaussianNoise(schedules.linear(1e-4, 0.02, 10)), 2, generator=g())


def test_conditional_start_is_real_test_images_fully_degraded(data_dir):
    d = D.RowAveraging(group=2)
    x = starts.draw("conditional", d, 5, generator=torch.Generator().manual_seed(4), data_dir=data_dir)
    x0 = starts.test_originals(5, generator=torch.Generator().manual_seed(4), data_dir=data_dir)
    assert torch.equal(x, d.degrade(x0, _t(5, d.T)))
    assert len(set(starts.test_indices(10_000, torch.Generator().manual_seed(0)).tolist())) == 10_000


def test_default_sampler_and_start_follow_the_degradation():
    assert samplers.default_sampler(C.preset("cold-row-random")) == "cold-alg2"
    assert starts.default_start(C.preset("cold-blur")) == "gmm"
    assert samplers.default_sampler(C.preset("ddpm-default")) == "ddpm"
    assert starts.default_start(C.preset("ddpm-default")) == "normal"


@pytest.mark.slow
def test_cli_trains_a_cold_preset_and_samples_every_start_and_algorithm(tmp_path, data_dir, capsys):
    from tests.conftest import cli as run_cli

    run = tmp_path / "cold"
    r = run_cli("train", "--preset", "cold-row-random", "--subset", "200", "--epochs", "1", "--batch-size", "50",
                "--hidden", "8,8", "--quiet", "--run", run)
    assert r.returncode == 0, r.stderr
    desc = json.loads((run / "degradation.json").read_text())
    assert desc["T"] == 28 and sorted(desc["band_order_1based"]) == list(range(1, 29))
    assert (run / "samples/epoch_0001.png").is_file()  # the epoch grid: GMM start, Algorithm 2
    for start in ("conditional", "gmm", "uniform"):
        for algorithm, name in (("direct", "cold-direct"), ("1", "cold-alg1"), ("2", "cold-alg2")):
            assert cli.main(["sample", str(run), "-n", "6", "--start", start, "--algorithm", algorithm,
                             "--components", "3"]) == 0
            tag = start + "-components3" * (start == "gmm")  # the option a start uses is in its name
            images = np.load(run / f"samples/sample-{name}-{tag}-n6-seed0.npy")
            assert images.shape == (6, 28, 28) and images.dtype == np.uint8
        for alg in ("alg1", "alg2"):
            assert (run / f"figures/cold-{start}-{alg}-seed0.png").is_file()
        assert (run / "figures/cold-strip-alg2-seed0.png").is_file()
    assert cli.main(["sample", str(run), "--algorithm", "2", "--sampler", "ddpm"]) == 2
    assert cli.main(["sample", str(run), "-n", "2", "--sampler", "ddpm"]) == 2
    assert "the ddpm sampler does not serve this run's RowAveraging process" in capsys.readouterr().err
    assert not (run / "samples/sample-ddpm-gmm-n2-seed0.png").exists()


@pytest.mark.slow
def test_blur_run_end_to_end(tmp_path, data_dir, capsys):
    """cold-blur, tiny: trains (L1, x0), describes itself, samples from its default start and sampler and
    from a conditional start, and the report names it as blur (not as a row order it does not have)."""
    from tests.conftest import cli as run_cli

    run = tmp_path / "blur"
    r = run_cli("train", "--preset", "cold-blur", "--subset", "128", "--epochs", "1", "--batch-size", "64",
                "--hidden", "8,8", "--T", "5", "--quiet", "--run", run)
    assert r.returncode == 0, r.stderr
    desc = json.loads((run / "degradation.json").read_text())
    assert desc["degradation"] == "blur" and desc["T"] == 5 and len(desc["sigma"]) == 5
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["type"] == "epoch"] == [1] and (run / "samples/epoch_0001.png").is_file()
    assert cli.main(["sample", str(run), "-n", "4", "--components", "2"]) == 0
    gmm = np.load(run / "samples/sample-cold-alg2-gmm-components2-n4-seed0.npy")
    assert gmm.shape == (4, 28, 28) and gmm.dtype == np.uint8
    assert cli.main(["sample", str(run), "-n", "3", "--start", "conditional", "--algorithm", "1"]) == 0
    assert np.load(run / "samples/sample-cold-alg1-conditional-n3-seed0.npy").shape == (3, 28, 28)
    assert (run / "figures/cold-conditional-alg1-seed0.png").is_file()
    cfg = C.from_dict(json.loads((run / "config.json").read_text()))
    assert "blur" in report_metrics.process_name(cfg) and "order" not in report_metrics.process_name(cfg)
    assert dict((k, f(cfg)) for k, f in report_metrics.HYPERPARAMETERS)["Row/Column schedule"] == "not used"
