"""scripts/quality_results.py on a tiny real run: protocol, verdicts, class shares, sample reuse."""

import importlib.util
import json
import runpy
import sys

import numpy as np
import pytest

from mnistdiff import config as C
from mnistdiff.training import loop as T

from .conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("quality_results", ROOT / "scripts" / "quality_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # Inception features of 40 images and a tiny training: ~30 s
def test_quality_results_measure_a_run_against_its_targets(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    run = tmp_path / "ddpm-unet"  # the directory's name picks issue 8's targets
    # The preset is class-conditional: drawn without --digit, with the "no label" token (and, by default,
    # the runtime auto picks: OpenVINO's compiled graph must get that token too).
    cfg = C.apply(C.preset("ddpm-unet"), dict(hidden=(8, 16), subset=128, epochs=1, T=20, batch_size=64,
                                              sample_epochs=()))
    T.train(cfg, run, progress=False)
    args = [str(run), "-n", "20", "--n-fid", "20", "--sampler", "ddim", "--steps", "5", "--out", str(tmp_path / "res")]
    assert _script().main(args) == 0
    r = json.loads((tmp_path / "res/ddpm-unet.json").read_text())
    assert (r["n"], r["n_fid"], r["epochs_done"]) == (20, 20, 1) and r["sampler_options"] == {"steps": 5}
    assert set(r["targets"]) == {"fid", "kid", "classifier_is", "max_class_share_gap_pp", "train_minutes"}
    assert r["targets"]["fid"]["met"] is False and r["targets"]["train_minutes"]["met"] is True
    assert sum(r["class_histogram"]) == 20 and sum(r["sample_share_pct"]) == pytest.approx(100, abs=0.1)
    assert sum(r["test_share_pct"]) == pytest.approx(100, abs=0.1) and r["test_share_pct"][1] == 11.35  # 1135 ones
    md = (tmp_path / "res/ddpm-unet.md").read_text()
    assert "20 vs 20" in md and "not the 10,000-sample protocol" in md and "| fid |" in md
    # A rerun reuses the kept samples rather than sampling again: same numbers.
    assert _script().main(args) == 0
    assert "reusing" in capsys.readouterr().err
    assert json.loads((tmp_path / "res/ddpm-unet.json").read_text())["fid"] == r["fid"]


@pytest.mark.slow  # a tiny conditional training and Inception features of 20 images: ~20 s
def test_quality_results_draw_the_digits_asked_for_with_guidance(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    run = tmp_path / "quick-unet"
    cfg = C.apply(C.preset("quick-unet"), dict(hidden=(8, 16), subset=128, batch_size=64, conditional=True))
    T.train(cfg, run, progress=False)
    out = tmp_path / "res"
    args = [str(run), "-n", "20", "--n-fid", "20", "--steps", "3", "--digit", "0,1,2,3,4,5,6,7,8,9",
            "--guidance", "2", "--runtime", "torch", "--out", str(out)]
    assert _script().main(args) == 0
    r = json.loads((out / "quick-unet.json").read_text())
    assert (r["digit"], r["guidance"], r["sampler"]) == ("0,1,2,3,4,5,6,7,8,9", 2.0, "heun")
    assert set(r["targets"]) == {"classifier_is", "saturated_share", "background", "train_minutes"}
    assert "classifier-free guidance w = 2" in (out / "quick-unet.md").read_text()
    assert list((run / "eval").glob("quality-default-steps3-digit0123456789-w2-n20-seed0.npy"))
    # Another weight is another sample set, not the kept one.
    assert _script().main(args[:-6] + ["--guidance", "0", "--runtime", "torch", "--out", str(out)]) == 0
    assert "reusing " + str(run) not in capsys.readouterr().err
    assert list((run / "eval").glob("quality-default-steps3-digit0123456789-w0-n20-seed0.npy"))
    assert json.loads((out / "quick-unet.json").read_text())["guidance"] == 0.0


def test_quality_results_refuse_digits_for_an_unconditional_run(tmp_path, capsys, monkeypatch):
    run = tmp_path / "ddpm-unet"
    T.train(C.apply(C.preset("ddpm-unet"), dict(hidden=(8, 16), subset=64, epochs=1, T=20, batch_size=64,
                                                sample_epochs=(), conditional=False)), run, progress=False)
    monkeypatch.setattr(sys, "argv", ["quality_results.py", str(run), "-n", "10", "--digit", "3", "--out",
                                      str(tmp_path / "res")])
    with pytest.raises(SystemExit) as e:  # the script's own entry point: a one-line error, exit 2
        runpy.run_path(str(ROOT / "scripts" / "quality_results.py"), run_name="__main__")
    assert e.value.code == 2 and "trained without labels" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


@pytest.mark.slow  # a tiny cold training and Inception features of 20 images
def test_quality_results_pass_the_start_options_to_a_cold_run(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    run = tmp_path / "cold-row-unet"
    T.train(C.apply(C.preset("cold-row-unet"), dict(hidden=(8, 16), subset=128, epochs=1, batch_size=64,
                                                    sample_epochs=())), run, progress=False)
    out = tmp_path / "res"
    args = [str(run), "-n", "20", "--n-fid", "20", "--runtime", "torch", "--out", str(out)]
    assert _script().main(args + ["--components", "3", "--start-noise", "0.05"]) == 0
    r = json.loads((out / "cold-row-unet.json").read_text())
    assert (r["start"], r["start_options"]) == ("gmm", {"components": 3, "noise": 0.05})
    assert "start gmm, components=3, noise=0.05, seed 0" in (out / "cold-row-unet.md").read_text()
    three = np.load(run / "eval" / "quality-default-components3-noise0.05-n20-seed0.npy")
    # the options reach the start: the default start (10 components, no noise) draws other images
    assert _script().main(args) == 0
    assert json.loads((out / "cold-row-unet.json").read_text())["start_options"] == {}
    assert not np.array_equal(three, np.load(run / "eval" / "quality-default-n20-seed0.npy"))


def test_quality_results_refuse_start_options_for_a_noise_start(tmp_path, capsys, monkeypatch):
    run = tmp_path / "ddpm-unet"
    T.train(C.apply(C.preset("ddpm-unet"), dict(hidden=(8, 16), subset=64, epochs=1, T=20, batch_size=64,
                                                sample_epochs=())), run, progress=False)
    monkeypatch.setattr(sys, "argv", ["quality_results.py", str(run), "-n", "10", "--components", "3", "--out",
                                      str(tmp_path / "res")])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts" / "quality_results.py"), run_name="__main__")
    assert e.value.code == 2 and "starts from normal" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
