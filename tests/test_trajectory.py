"""`sample --trajectory`: every sampler's steps drawn as a GIF or a PNG strip, x_k above the net's x0 estimate."""

import numpy as np
import pytest
import torch
from PIL import Image

from mnistdiff import config as C
from mnistdiff.sampling import trajectory as TR
from mnistdiff.sampling.generate import generate
from mnistdiff.training.loop import build

from .conftest import TINY, main

# (preset, sampler, its options, the steps it takes): one of each process, and the step-skipping samplers.
CASES = [("ddpm-default", "ddpm", {}, 20), ("ddpm-default", "ddim", {"steps": 5}, 5),
         ("quick-unet", "heun", {"steps": 4}, 4), ("quick-unet", "dpm++2m", {"steps": 6}, 6),
         ("cold-row-random", "cold-alg2", {}, 28), ("cold-blur", "cold-direct", {}, None)]


@pytest.mark.parametrize("preset,sampler,options,steps", CASES, ids=[c[1] for c in CASES])
def test_every_sampler_gives_a_gif_and_a_strip(tmp_path, data_dir, preset, sampler, options, steps):
    cfg = C.apply(C.preset(preset), {**TINY, "T": 20} if preset == "ddpm-default" else {"hidden": (8, 8)})
    net, process = build(cfg)  # untrained: the pictures need steps, not good digits
    net.eval()
    net = process.sampling_net(net, cfg.process.prediction)
    record = TR.Recorder()
    images = generate(net, process, cfg, 10, sampler=sampler, sampler_options=options, start="conditional"
                      if cfg.process.degradation != "gaussian" and cfg.process.degradation != "edm" else None,
                      data_dir=data_dir, run=tmp_path, record=record)
    ks = [k for k, _, _ in record.steps]
    assert ks and ks == sorted(ks, reverse=True) and ks[-1] >= 1
    if steps is not None:
        assert len(ks) == steps
    assert all(x.shape == (TR.SHOWN, 28, 28) and x.dtype == np.uint8 and x0.shape == x.shape
               for _, x, x0 in record.steps)
    gif = TR.write(record, tmp_path / "t.gif", images)
    with Image.open(gif) as im:
        assert im.n_frames == min(len(ks), TR.FRAMES) + 1  # the chosen steps, then the samples
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("L"))
    # The last frame's bottom row is the samples themselves (pixel for pixel, at SCALE).
    top = 14 + TR.SCALE * (2 + 28 + 2)
    first = last[top + TR.SCALE * 2: top + TR.SCALE * 30: TR.SCALE, TR.SCALE * 2: TR.SCALE * 30: TR.SCALE]
    assert np.array_equal(first, images[0].numpy())
    chosen = [ks[0], ks[-1]]
    png = TR.write(record, tmp_path / "t.png", images, chosen)
    with Image.open(png) as im:
        width, height = im.size
    assert width == TR.SCALE * (2 + 3 * 30) and height == 14 + TR.SCALE * (2 + 2 * TR.SHOWN * 30)


def test_the_first_state_is_scaled_to_show_its_noise():
    x = torch.randn(4, 1, 28, 28)
    shown = TR.display(x)
    assert 20 < shown.std() < 120 and (shown == 0).mean() < 0.5  # noise, not saturated black and white
    digit = torch.full((1, 1, 28, 28), -0.5)
    digit[..., 10:18, 10:18] = 0.5
    assert np.array_equal(TR.display(digit)[0], np.where(digit[0, 0].numpy() > 0, 255, 0))  # a digit as is


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("traj") / "run"
    flags = ["--subset", "64", "--epochs", "1", "--T", "20", "--batch-size", "32", "--hidden", "8",
             "--sample-epochs", "", "--quiet"]
    assert main("train", "--preset", "ddpm-default", "--run", run, *flags).returncode == 0
    return run


def test_the_cli_writes_the_trajectory_beside_the_samples(tiny_run, tmp_path):
    r = main("sample", tiny_run, "-n", "4", "--sampler", "ddim", "--steps", "5", "--out", tmp_path / "s.png",
             "--trajectory", tmp_path / "t.png", "--trajectory-steps", "20,1")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and (tmp_path / "s.png").is_file() and (tmp_path / "t.png").is_file()
    with Image.open(tmp_path / "t.png") as im:  # 4 samples: 4 pairs of rows, 2 steps and the result
        assert im.size == (TR.SCALE * (2 + 3 * 30), 14 + TR.SCALE * (2 + 8 * 30))


@pytest.mark.parametrize("args,match", [
    (["--trajectory", "{tmp}/t.jpg"], "must name a .gif"),
    (["--trajectory-steps", "5,1"], "pass that too"),
    (["--trajectory", "{tmp}/t.gif", "--trajectory-steps", "5,x"], "whole steps"),
    (["--trajectory", "{tmp}/t.gif", "--trajectory-steps", "7"], "this sampler's steps are"),
    (["--trajectory", "{tmp}/s.png"], "is where the samples go"),
    (["--trajectory", "{tmp}/old.gif"], "already exists"),
])
def test_bad_trajectory_requests_are_refused_and_write_nothing(tiny_run, tmp_path, args, match):
    (tmp_path / "old.gif").write_bytes(b"kept")
    r = main("sample", tiny_run, "-n", "2", "--sampler", "ddim", "--steps", "5", "--out", tmp_path / "s.png",
             *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.gif"] and (tmp_path / "old.gif").read_bytes() == b"kept"
