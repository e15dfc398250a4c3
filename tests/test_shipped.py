"""The shipped models: weights-only files with a card, sampled and evaluated by name with no training."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

import mnistdiff
from mnistdiff.errors import CorruptCheckpoint, UserError
from mnistdiff.sampling import shipped
from mnistdiff.training import checkpoint
from mnistdiff.training.checkpoint import store

from .conftest import main

# What the package ships (scripts/ship_model.py wrote each file and its card).
SHIPPED = ["cold-row-unet", "quick-unet"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_model_matches_its_card_and_samples_by_name(name, tmp_path, monkeypatch):
    assert name in shipped.names()
    card, path = shipped.card(name), shipped.weights(name)
    blob = path.read_bytes()
    assert card["weights"]["sha256"] == hashlib.sha256(blob).hexdigest() and len(blob) < 8e6
    m = card["measured"]
    assert m["n"] >= 2000 and m["n_ref"] == 10_000 and 0 <= m["copy_rate_pixel"] <= 1 and m["fid"] > 0
    assert m["command"].startswith("mnistdiff evaluate ") and "--memorisation" in m["command"]
    assert card["sample"].startswith(
        f"mnistdiff sample {name} ")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNISTDIFF_DATA", str(tmp_path / "no-mnist"))  # a shipped model needs no data (its fits ship)
    r = main("sample", name, "-n", "4", "--seed", "1", "--out", "s.png")
    assert r.returncode == 0, r.stderr
    assert "download" not in r.stderr and not (tmp_path / "no-mnist").exists()
    model = mnistdiff.load(name)
    assert model.model == name and model.card == card
    assert np.array_equal(model.sample(4, seed=1).numpy(), np.load("s.npy"))  # the card's defaults, both ways


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny trained run exported as a shipped model would be, in a folder of its own."""
    root = tmp_path_factory.mktemp("shipped")
    run = root / "run"
    assert main("train", "--preset", "ddpm-default", "--run", run, "--subset", "64", "--epochs", "1", "--T", "10",
                "--batch-size", "32", "--hidden", "8", "--sample-epochs", "", "--checkpoint-every", "1",
                "--ema-decay", "0.9", "--quiet").returncode == 0
    models = root / "models"
    models.mkdir()
    shipped.export(run, models / "tiny.safetensors")
    card = {"name": "tiny", "description": "a test model", "weights": {"kind": "EMA"},
            "sampling": {"sampler": "ddim", "sampler_options": {"steps": 3}}, "sample": "mnistdiff sample tiny"}
    (models / "tiny.json").write_text(json.dumps(card))
    return run, models


@pytest.fixture
def models(tiny_model, tmp_path, monkeypatch):
    """The tiny model as the only one installed; the working directory a fresh one."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_model[1], folder)
    monkeypatch.setattr(shipped, "MODELS", folder)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


def test_the_export_has_the_nets_weights_and_no_training_state(tiny_model, models):
    run, _ = tiny_model
    tensors, cfg, state = checkpoint.load(models / "tiny.safetensors")
    full, _, _ = checkpoint.load(store.checkpoint_path(run, "last"))
    kept = checkpoint.EMA_PREFIX  # the average, not the last step's weights
    assert state == {} and set(tensors) == {"model/" + k[len(kept):] for k in full if k.startswith(kept)}
    assert all(torch.equal(t, full[kept + k[len("model/"):]]) for k, t in tensors.items())
    assert cfg["train"]["threads"] == 0 and cfg["train"]["compile"] is False
    with pytest.raises(UserError, match="already exists"):
        shipped.export(run, models / "tiny.safetensors")


def test_a_name_is_a_shipped_model_unless_a_path_of_that_name_exists(tiny_model, models, tmp_path):
    r = main("sample", "tiny", "-n", "3")
    assert r.returncode == 0, r.stderr
    made = sorted(p.name for p in (tmp_path / "work" / "shipped" / "tiny" / "samples").iterdir())
    assert made == ["sample-ddim-steps3-n3-seed0.npy", "sample-ddim-steps3-n3-seed0.png"]  # the card's sampler
    shutil.copytree(tiny_model[0], "tiny")  # a run folder called tiny: the path wins ...
    assert main("sample", "tiny", "-n", "3").returncode == 0
    assert (tmp_path / "work" / "tiny" / "samples" / "sample-ddpm-n3-seed0.png").is_file()
    assert main("sample", "shipped:tiny", "-n", "3", "--seed", "1").returncode == 0  # ... unless shipped: says
    assert (tmp_path / "work" / "shipped" / "tiny" / "samples" / "sample-ddim-steps3-n3-seed1.png").is_file()
    assert mnistdiff.load("tiny").model is None and mnistdiff.load("shipped:tiny").model == "tiny"


@pytest.mark.parametrize("args,match", [
    (["sample", "shipped:nope"], "no shipped model 'nope'; choose one of: tiny"),
    (["sample", "nope"], "or a shipped model (tiny)"),
    (["sample", "tiny", "--checkpoint", "best"], "has one set of weights"),
    (["sample", "tiny", "--weights", "raw"], "has one set of weights"),
    (["evaluate", "tiny", "--checkpoint", "best"], "has one set of weights"),
    (["models", "nope"], "no shipped model 'nope'"),
])
def test_bad_names_are_refused_in_one_line(models, args, match):
    r = main(*args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, r.stderr


def test_a_damaged_model_file_is_refused(models):
    path = models / "tiny.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    r = main("sample", "tiny", "-n", "2")
    assert r.returncode == 2 and "SHA-256" in r.stderr and not (models.parent / "work" / "shipped").exists()
    with pytest.raises(CorruptCheckpoint):
        mnistdiff.load("tiny")


def test_a_weights_file_must_hold_exactly_the_nets_tensors(tiny_model, tmp_path):
    tensors, cfg, _ = checkpoint.load(tiny_model[1] / "tiny.safetensors")
    extra = {**tensors, "opt/0/exp_avg": torch.zeros(3)}
    missing = dict(list(tensors.items())[1:])
    for bad, match in ((extra, "does not have"), (missing, "lacks 1 tensor")):
        path = tmp_path / f"bad-{len(bad)}.safetensors"
        checkpoint.save(path, tensors=bad, config=cfg, state={}, format=checkpoint.WEIGHTS_FORMAT)
        with pytest.raises(CorruptCheckpoint, match=match):
            checkpoint.load(path)


def test_a_weights_file_cannot_stand_in_for_a_training_checkpoint(tiny_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model[0], run)
    last = store.checkpoint_path(run, "last")
    last.unlink()
    shutil.copy(tiny_model[1] / "tiny.safetensors", last)
    r = main("train", "--resume", run, "--epochs", "2", "--quiet")
    assert r.returncode == 0 and "weights-only model file" in r.stderr, r.stderr


def test_models_lists_what_is_installed(models):
    r = main("models")
    assert r.returncode == 0 and r.stdout.splitlines()[:2] == ["tiny", "  a test model"], r.stdout
    card = json.loads(main("models", "tiny").stdout)
    assert card["name"] == "tiny"


def test_a_shipped_model_evaluates_into_a_folder_of_its_own(models, tmp_path, cache):
    r = main("evaluate", "tiny", "-n", "20", "--metrics", "classifier", "--n-ref", "50", "--cache-dir", cache,
             "--name", "t", "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "work" / "shipped" / "tiny" / "eval" / "t.json").read_text())
    assert result["samples"]["sampler"] == "ddim" and result["samples"]["sampler_options"] == {"steps": 3}
    assert mnistdiff.load("tiny").evaluate(20, metrics="classifier", n_ref=50, cache=cache,
                                           name="api")["classifier_is"] > 0


@pytest.mark.slow  # the memorisation check embeds the 60,000 training digits
def test_a_card_may_take_the_runs_own_evaluation_of_the_same_weights(tiny_model, cache, monkeypatch, tmp_path):
    import importlib.util

    from mnistdiff.evaluation.evaluate import evaluate_run

    from .conftest import ROOT

    spec = importlib.util.spec_from_file_location("ship_model", ROOT / "scripts" / "ship_model.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    monkeypatch.setattr(ship, "MIN_N", 20)
    run = tmp_path / "run"
    shutil.copytree(tiny_model[0], run)  # trained on below
    kept, _ = evaluate_run(run, n=20, metrics="classifier", n_ref=50, cache=cache, progress=False,
                           memorisation=True, name="card")
    result, command = ship.run_evaluation(run, kept, {}, None)
    assert result["memorisation"] and command == f"mnistdiff evaluate {run} -n 20 --memorisation"
    with pytest.raises(SystemExit, match="not with the card's sampler ddim-steps3"):
        ship.run_evaluation(run, kept, {"sampler": "ddim", "sampler_options": {"steps": 3}}, None)
    bare, _ = evaluate_run(run, n=20, metrics="classifier", n_ref=50, cache=cache, progress=False, name="bare")
    with pytest.raises(SystemExit, match="not with --memorisation"):
        ship.run_evaluation(run, bare, {}, None)
    monkeypatch.setattr(ship, "MIN_N", 2000)
    with pytest.raises(SystemExit, match="not of at least 2000 samples"):
        ship.run_evaluation(run, kept, {}, None)
    assert main("train", "--resume", run, "--epochs", "2", "--quiet").returncode == 0
    monkeypatch.setattr(ship, "MIN_N", 20)
    with pytest.raises(SystemExit, match="SHA-256"):  # trained on since: not the weights it would ship
        ship.run_evaluation(run, kept, {}, None)
