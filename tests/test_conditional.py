"""Class-conditional training and classifier-free guidance (issue 17): labels, the guided net, every
sampler, training and resume, the CLI, and unconditional runs left as they were."""

import numpy as np
import pytest
import torch

from mnistdiff.training import checkpoint
from mnistdiff import config as C, nets, processes
from mnistdiff.sampling import guidance as G, samplers
from mnistdiff.processes import predictions
from mnistdiff.training import loop as T
from mnistdiff.errors import UserError
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import load_trained

from .conftest import cli, main, tiny_flags
from mnistdiff.training.checkpoint import store

TINY_COND = dict(subset=128, epochs=1, T=20, batch_size=32, hidden=(8, 8), sample_epochs=(), conditional=True)


class LabelNet(torch.nn.Module):
    """An exact net whose output is known: x scaled by (label + 1), "no label" giving -1."""

    def forward(self, x, t, y=None):
        y = torch.full(x.shape[:1], nets.NULL_LABEL) if y is None else y
        scale = torch.where(y == nets.NULL_LABEL, -1.0, y.float() + 1)
        return x * scale.view(-1, 1, 1, 1) + 0 * t.view(-1, 1, 1, 1)


# -- which digits -------------------------------------------------------------------------------------

def test_labels_one_digit_a_list_cycled_and_all_as_rows():
    assert G.labels(None, 5) is None
    assert G.labels(7, 3).tolist() == [7, 7, 7] and G.labels("7", 2).tolist() == [7, 7]
    assert G.labels("3,5", 5).tolist() == [3, 5, 3, 5, 3] and G.labels([1, 2], 3).tolist() == [1, 2, 1]
    assert G.labels("all", 20).tolist() == [d for d in range(10) for _ in range(2)]  # row d = digit d
    assert G.labels(" ALL ", 10).tolist() == list(range(10))


@pytest.mark.parametrize("spec, n, match", [("all", 64, "multiple of 10"), ("10", 4, "0-9"), ("x", 4, "comma"),
                                            ("", 4, "0-9"), ([], 4, "0-9"), (True, 4, "0-9"), (-1, 4, "0-9"),
                                            ("3,,11", 4, "0-9")])
def test_bad_digits_are_one_line_errors(spec, n, match):
    with pytest.raises(UserError, match=match):
        G.labels(spec, n)


def test_check_refuses_what_a_run_cannot_do():
    with pytest.raises(UserError, match="trained without labels"):
        G.check(False, torch.tensor([7]), 0.0)
    with pytest.raises(UserError, match="needs the digits"):
        G.check(True, None, 2.0)
    for bad in (-1, float("nan"), float("inf"), 1e9):
        with pytest.raises(UserError, match="guidance"):
            G.check(True, torch.tensor([7]), bad)
    G.check(True, None, 0.0)  # a conditional run's "no label" mode
    G.check(False, None, 0.0)


# -- guidance -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("w", [0.0, 0.5, 2.0])
def test_guided_output_is_the_classifier_free_combination(w):
    x, t, y = torch.randn(4, 1, 28, 28), torch.rand(4), torch.tensor([0, 3, 9, 3])
    out = G.Guided(LabelNet(), y, w)(x, t)
    cond, uncond = x * (y.float() + 1).view(-1, 1, 1, 1), -x
    assert torch.allclose(out, (1 + w) * cond - w * uncond, atol=1e-6)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_guiding_an_x0_or_v_net_is_guiding_its_eps(prediction):
    """generate() guides the sampling net; for x0/v nets that is EpsFrom(net), which forwards the labels.
    Because eps is affine in the net's output at fixed x_t, guiding either gives the same eps."""
    process = processes.build(C.apply(C.Config(), dict(T=20, prediction=prediction)).process)
    raw, w = LabelNet(), 1.5
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([0.25, 0.5, 1.0]), torch.tensor([1, 4, 8])
    guided = G.Guided(process.sampling_net(raw, prediction), y, w)(x, t)
    a, s = process.coefficients((t * process.T).round().long())
    eps = lambda out: predictions.to_eps(prediction, out, x, a, s)  # noqa: E731
    assert torch.allclose(guided, (1 + w) * eps(raw(x, t, y)) - w * eps(raw(x, t, None)), atol=1e-5)


# -- nets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("net", ["cnn", "unet"])
def test_an_unconditional_net_is_unchanged_and_a_conditional_one_adds_only_its_embedding(net):
    # 16 channels: at 8, GroupNorm's 8 groups are single channels and remove any per-channel shift.
    flags = dict(net=net, hidden=(16, 16), act="silu")
    torch.manual_seed(0)
    plain = nets.build(C.apply(C.Config(), flags).model)
    torch.manual_seed(0)
    cond = nets.build(C.apply(C.Config(), dict(flags, conditional=True)).model)
    p, c = plain.state_dict(), cond.state_dict()
    assert not any("label" in k for k in p)
    assert set(c) - set(p) == {"label.weight"} and c["label.weight"].shape[0] == 11
    assert all(torch.equal(p[k], c[k]) for k in p)  # the embedding is drawn last
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    with torch.no_grad():
        for param in cond.parameters():
            param.add_(0.1 * torch.randn_like(param))  # the UNet's output conv starts at zero
        assert torch.equal(cond(x, t), cond(x, t, torch.full((2,), nets.NULL_LABEL)))  # None = "no label"
        assert (cond(x, t, torch.tensor([3, 3])) - cond(x, t, torch.tensor([5, 5]))).abs().max() > 1e-4


# -- training and sampling ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cond") / "run"
    T.train(C.apply(C.preset("ddpm-default"), dict(TINY_COND, ema_decay=0.9)), run, progress=False)
    return run


def test_label_dropout_trains_the_no_label_token(cond_run, tmp_path):
    """label_dropout 1 trains only "no label": the digit rows of the embedding stay as initialised;
    label_dropout 0 never trains "no label"."""
    cfg = C.apply(C.preset("ddpm-default"), TINY_COND)
    torch.manual_seed(cfg.train.seed)
    init = nets.build(cfg.model).state_dict()["label.weight"]
    for dropout, moved, still in ((1.0, [nets.NULL_LABEL], range(10)), (0.0, range(10), [nets.NULL_LABEL])):
        run = tmp_path / f"d{dropout}"
        T.train(C.apply(cfg, dict(label_dropout=dropout)), run, progress=False)
        w = checkpoint.load(store.checkpoint_path(run, "last"))[0]["model/label.weight"]
        assert all(not torch.equal(w[i], init[i]) for i in moved)
        assert all(torch.equal(w[i], init[i]) for i in still)


def test_a_conditional_run_resumes_bit_exactly(tmp_path):
    cfg = C.apply(C.preset("ddpm-default"), dict(TINY_COND, epochs=2, subset=96, label_dropout=0.5))
    T.train(cfg, tmp_path / "whole", progress=False)
    T.train(C.apply(cfg, dict(checkpoint_every=1)), tmp_path / "halves", progress=False, stop_after_steps=4)
    T.train(C.apply(cfg, dict(checkpoint_every=1)), tmp_path / "halves", resume=True, progress=False)
    a = checkpoint.load(store.checkpoint_path(tmp_path / "whole", "last"))[0]
    b = checkpoint.load(store.checkpoint_path(tmp_path / "halves", "last"))[0]
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("rng/"))


@pytest.mark.parametrize("sampler, options", [("ddpm", {}), ("ddim", {"steps": 5})])
def test_every_gaussian_sampler_is_guided_and_deterministic(cond_run, sampler, options):
    cfg, net, process = load_trained(cond_run)
    digits = G.labels("all", 10)
    draw = lambda w, seed=0: generate(net, process, cfg, 10, seed=seed, sampler=sampler,  # noqa: E731
                                      sampler_options=options, digits=digits, guidance=w)
    a, b = draw(2.0), draw(2.0)
    assert a.shape == (10, 28, 28) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, draw(0.0))  # the weight reaches the sampler
    assert not torch.equal(draw(0.0), generate(net, process, cfg, 10, sampler=sampler, sampler_options=options))


def test_batches_do_not_change_guided_images(cond_run):
    cfg, net, process = load_trained(cond_run)
    digits = G.labels("3,8", 6)
    kw = dict(sampler="ddim", sampler_options={"steps": 4}, digits=digits, guidance=1.0)
    assert torch.equal(generate(net, process, cfg, 6, batch_size=6, **kw),
                       generate(net, process, cfg, 6, batch_size=4, **kw))


@pytest.mark.parametrize("preset, sampler", [("cold-row-random", "cold-alg1"), ("cold-row-random", "cold-alg2"),
                                             ("quick-unet", "heun"), ("quick-unet", "dpm++2m")])
def test_cold_and_edm_runs_train_conditionally_and_are_guided(tmp_path, preset, sampler):
    flags = dict(TINY_COND, T=28) if preset.startswith("cold") else dict(TINY_COND, hidden=(16, 16))  # see the nets test on 8 channels
    T.train(C.apply(C.preset(preset), flags), tmp_path / "r", progress=False)
    cfg, net, process = load_trained(tmp_path / "r")
    options = {"steps": 3} if sampler in ("heun", "dpm++2m") else {}
    start = "normal" if process.stochastic else "conditional"
    draw = lambda w: generate(net, process, cfg, 4, sampler=sampler, start=start, sampler_options=options,  # noqa: E731
                              digits=G.labels("1,7", 4), guidance=w)
    assert not torch.equal(draw(0.0), draw(3.0))


@pytest.mark.parametrize("runtime", ["openvino"])
def test_the_compiled_runtime_takes_the_labels(cond_run, runtime):
    cfg, eager, process = load_trained(cond_run, runtime="torch")
    _, fast, _ = load_trained(cond_run, runtime=runtime, batch_size=4)
    assert getattr(fast, "runtime", None) == runtime
    kw = dict(sampler="ddim", sampler_options={"steps": 5}, digits=G.labels("2,6", 4), guidance=2.0)
    a, b = generate(eager, process, cfg, 4, **kw), generate(fast, process, cfg, 4, **kw)
    assert (a == b).float().mean().item() >= 0.99


# -- the CLI ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_trains_conditionally_and_draws_one_row_per_digit(tmp_path):
    run = tmp_path / "c"
    r = cli("train", "--run", run, *tiny_flags(), "--conditional", "--label-dropout", "0.2")
    assert r.returncode == 0, r.stderr
    saved = C.load_file(run / "config.json")
    assert saved["model"]["conditional"] is True and saved["train"]["label_dropout"] == 0.2
    r = cli("sample", run, "--digit", "all", "-n", "20", "--sampler", "ddim", "--steps", "5", "--guidance", "2",
            "--runtime", "torch")
    assert r.returncode == 0, r.stderr
    images = np.load(run / "samples" / "sample-ddim-steps5-digitall-w2-n20-seed0.npy")
    assert images.shape == (20, 28, 28)
    from PIL import Image
    grid = Image.open(run / "samples" / "sample-ddim-steps5-digitall-w2-n20-seed0.png")
    assert grid.height > 4 * grid.width  # 10 rows of 2: one row per digit


def test_cli_refusals_are_one_line_and_write_nothing(tmp_path, cond_run):
    plain = tmp_path / "plain"
    assert main("train", "--run", plain, *tiny_flags()).returncode == 0
    before = sorted(p.name for p in (plain / "samples").iterdir())
    for run, args, match in [(plain, ["--digit", "7"], "trained without labels"),
                             (cond_run, ["--guidance", "2"], "needs the digits"),
                             (cond_run, ["--digit", "all", "-n", "64"], "multiple of 10"),
                             (cond_run, ["--digit", "12"], "0-9"),
                             (cond_run, ["--digit", "7", "--guidance", "-1"], "guidance")]:
        r = main("sample", run, *args, "--runtime", "torch")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, (args, r.stderr)
    assert sorted(p.name for p in (plain / "samples").iterdir()) == before
    r = main("train", "--run", tmp_path / "bad", *tiny_flags(), "--conditional", "--label-dropout", "2")
    assert r.returncode == 2 and "label_dropout" in r.stderr and not (tmp_path / "bad").exists()


def test_evaluate_reports_the_classifiers_agreement_with_the_digit(cond_run, cache):
    from mnistdiff.evaluation import evaluate as E

    out, result = E.evaluate_run(cond_run, n=20, metrics="classifier", cache=cache, progress=False,
                                 sampler="ddim", sampler_options={"steps": 5}, digit="0,1,2,3,4,5,6,7,8,9",
                                 guidance=1.0, runtime="torch")
    assert 0 <= result["digit_agreement"] <= 1 and result["samples"]["guidance"] == 1.0
    assert "digit0_1_2_3_4_5_6_7_8_9-w1" in out.name
    assert any("agrees with the digit asked for" in line for line in E.report_lines(result))


def test_unconditional_samplers_registry_is_untouched():
    """Guidance lives in the net, not the samplers: no sampler grew a label argument."""
    for s in samplers.SAMPLERS.values():
        assert "digits" not in s.options and "guidance" not in s.options
