"""`mnistdiff fid A B` and `mnistdiff.fid(a, b)`: any two sets of digits, measured as evaluate measures a run."""

import json

import numpy as np
import pytest
from PIL import Image

import mnistdiff
from mnistdiff import data

from .test_bad_inputs import run_cli


@pytest.fixture(scope="module")
def digits(data_dir):
    return data.load_split("train", data_dir).images[:40].numpy()


@pytest.fixture
def sets(tmp_path, digits):
    np.save(tmp_path / "u8.npy", digits)
    np.save(tmp_path / "float.npy", digits.astype(np.float32) / 127.5 - 1)  # in [-1, 1]
    (tmp_path / "pngs").mkdir()
    for i, image in enumerate(digits):
        Image.fromarray(image).save(tmp_path / "pngs" / f"{i:03d}.png")
    return tmp_path


def test_every_form_of_a_set_gives_the_same_numbers(sets, digits, cache):
    common = dict(metrics="classifier", cache=cache)
    ref = mnistdiff.fid(sets / "u8.npy", "mnist-test:100", **common)
    drop = lambda r: {k: v for k, v in r.items() if k not in ("timing", "sets")}  # noqa: E731
    for a, extra in ((sets / "pngs", {}), (sets / "float.npy", {"value_range": (-1, 1)}), (digits, {}),
                     (digits[:, None], {})):
        assert drop(mnistdiff.fid(a, "mnist-test:100", **common, **extra)) == drop(ref)
    assert ref["n"] == 40 and ref["protocol"]["real"]["count"] == 100 and sum(ref["class_histogram"]) == 40


def test_a_set_against_itself_is_at_the_floor(digits, cache):
    r = mnistdiff.fid(digits, digits, metrics="classifier", cache=cache)
    assert r["fd_classifier"] == pytest.approx(0.0, abs=1e-3) and r["protocol"]["real"]["split"] is None


@pytest.mark.slow
def test_inception_fid_and_kid_through_the_cli(sets, cache, capsys):
    from mnistdiff import cli as cli_mod

    out = sets / "r.json"
    assert cli_mod.main(["fid", str(sets / "u8.npy"), "mnist-test:20", "--cache-dir", str(cache), "--json", str(out),
                         "--runtime", "torch", "--quiet"]) == 0
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["fid"] > 0 and "kid" in r and f"{r['fid']:.3f}" in printed
    same = mnistdiff.fid(sets / "u8.npy", sets / "u8.npy", cache=cache)
    assert same["fid"] == pytest.approx(0.0, abs=1e-2)


@pytest.mark.parametrize("make, args, message", [
    (lambda d: np.save(d / "x.npy", np.zeros((0, 28, 28), np.uint8)), ["x.npy"], "holds 0 image(s)"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 32, 32), np.uint8)), ["x.npy"], "shape (5, 32, 32)"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 28, 28), np.float32)), ["x.npy"], "say which values are black"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 28, 28), np.float32)), ["x.npy", "--range", "1,0"],
     "must be below white"),
    (lambda d: (d / "x.npy").write_bytes(b"not numpy"), ["x.npy"], "cannot read"),
    (lambda d: (d / "x.txt").write_text("x"), ["x.txt"], "neither a .npy file nor a folder"),
    (lambda d: (d / "f").mkdir(), ["f"], "holds no .png files"),
    (lambda d: ((d / "f").mkdir(), Image.new("L", (32, 32)).save(d / "f" / "a.png")), ["f"], "must be 28x28"),
    (lambda d: None, ["missing.npy"], "does not exist"),
    (lambda d: None, ["mnist-test:1"], "ask for 2 to 10000"),
    (lambda d: (d / "r.json").write_text("{}"), ["mnist-train:10", "--json", "r.json"], "already exists"),
    (lambda d: (d / "r").mkdir(), ["mnist-train:10", "--json", "r"], "must name a .json file"),
    (lambda d: (d / "file").write_text("x"), ["mnist-train:10", "--json", "file/r.json"], "is a file, not a directory"),
])
def test_bad_sets_are_one_line(capsys, tmp_path, monkeypatch, make, args, message):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    err = run_cli(capsys, "fid", args[0], "mnist-test:50", *args[1:], "--metrics", "classifier")
    assert message in err


def test_run_evaluate_returns_what_evaluate_writes(tmp_path, cache):
    run = mnistdiff.train("cold-row-random-g4", tmp_path / "run", epochs=1, subset=64, batch_size=32, hidden=(8,),
                          sample_epochs=(), progress=False)
    result = run.evaluate(n=10, metrics="classifier", n_ref=50, cache=cache, name="api")
    assert result == json.loads((tmp_path / "run" / "eval" / "api.json").read_text())
    assert result["samples"]["n"] == 10 and run.evaluations()["api"] == result
