"""Resource limits, caches, concurrent evaluations and the API's argument types: each case ends as one
line and exit code 2 on the CLI (or a ValueError/TypeError naming the argument in the Python API), with
nothing lost or overwritten and no hang."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from mnistdiff import api, cli as cli_mod, config as C
from mnistdiff.training import checkpoint
from mnistdiff.evaluation import classifier as CL
from mnistdiff.sampling import guidance as G
from mnistdiff.training import loop as T
from mnistdiff.errors import BadArgument, UserError, WrongType

from .test_bad_inputs import run_cli, snapshot
from mnistdiff import files
from mnistdiff import machine
from mnistdiff.training import rundir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("limits") / "run"
    cfg = C.apply(C.preset("ddpm-default"), dict(subset=64, epochs=2, T=10, batch_size=32, hidden=(8,),
                                                 sample_epochs=()))
    T.train(cfg, run, progress=False)
    return run


@pytest.fixture
def run_copy(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def resave(path, *, config=None, tensors=None):
    """Rewrite a checkpoint with changed contents and a valid hash, as a crafted file would be."""
    t, cfg, state = checkpoint.load(path)
    checkpoint.save(path, tensors=tensors(t) if tensors else t, config=config(cfg) if config else cfg, state=state)


# -- 1: resource-sized values ----------------------------------------------------------------------

def test_a_huge_thread_count_is_refused_before_anything_starts(capsys, tmp_path):
    err = run_cli(capsys, "train", "--preset", "quick", "--run", tmp_path / "r", "--threads", "1000000")
    assert "threads=1000000 must lie in [0, 256]" in err
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_asking_for_a_million_threads_is_refused(capsys, run_copy):
    last = run_copy / "checkpoints" / "last.safetensors"
    resave(last, config=lambda c: {**c, "train": {**c["train"], "threads": 10 ** 6}})
    err = run_cli(capsys, "sample", last, "-n", "4", "--out", run_copy / "x.png")
    assert "threads=1000000" in err and "invalid config" in err


def test_threads_are_capped_at_the_cores_of_this_machine():
    before = torch.get_num_threads()
    try:
        machine.set_threads(machine.MAX_THREADS)
        assert torch.get_num_threads() == min(machine.MAX_THREADS, os.cpu_count())
    finally:
        torch.set_num_threads(before)


# Bounds that keep one process runnable on a laptop; validate() must refuse anything past them.
RESOURCE_BOUNDS = {"threads": machine.MAX_THREADS, "batch_size": 65_536, "n_eval": C.MAX_EVAL, "eval_ref": 10_000,
                   "epochs": 1_000_000, "T": 100_000, "res_blocks": 8, "subset": 60_000,
                   "checkpoint_every": 10 ** 9, "eval_every": 1_000_000}
INT_FIELDS = sorted(f for f in C.FIELD_SECTION if C.field_type(f) is int)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(INT_FIELDS), value=st.integers(-2 ** 63, 2 ** 63 - 1), hidden=st.integers(-1, 2 ** 31))
def test_validation_bounds_every_resource_sized_value(field, value, hidden):
    try:
        cfg = C.validate(C.apply(C.preset("ddpm-default"), {field: value, "hidden": (hidden,)}))
    except UserError:
        return
    for name, high in RESOURCE_BOUNDS.items():
        got = getattr(getattr(cfg, C.FIELD_SECTION[name]), name)
        assert got <= high, (name, got)
    assert max(cfg.model.hidden) <= 4096


def test_every_int_field_is_bounded_or_known_harmless():
    # A new int field must be added to RESOURCE_BOUNDS (or here, where its size costs nothing).
    harmless = {"seed", "order_seed", "group", "lr_warmup"}
    assert set(INT_FIELDS) <= set(RESOURCE_BOUNDS) | harmless, set(INT_FIELDS) - set(RESOURCE_BOUNDS) - harmless


# -- 2, 3: caches ----------------------------------------------------------------------------------

PROBE = """
import json, sys, torch
from mnistdiff.sampling import runtime as RT
path = RT.prepare(torch.nn.Linear(3, 3), (torch.zeros(2, 3),), "auto", name="lin", cache_dir=sys.argv[1],
                  progress=False)
print("done")
"""


def _runtime_entry(cache):
    subprocess.run([sys.executable, "-c", PROBE, str(cache)], check=True, timeout=120, capture_output=True)
    (entry,) = (cache / "runtime").iterdir()
    return entry


@pytest.mark.parametrize("damage", ["fifo", "[]", "null", "{\"choice\": 7}", "\xff"])
def test_a_damaged_runtime_cache_entry_is_passed_over(tmp_path, damage):
    entry = _runtime_entry(tmp_path)
    entry.unlink()
    if damage == "fifo":
        os.mkfifo(entry)
    else:
        entry.write_bytes(damage.encode("latin-1"))
    # A FIFO blocked this forever: the timeout makes a hang a failure.
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], timeout=120, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
    said = "ignoring the cache entry" if damage == "fifo" else "is damaged; probing again"
    assert out.stderr.count(said) == 1, out.stderr
    if damage == "fifo":
        assert not entry.is_file()  # left as it was
    else:
        assert json.loads(entry.read_text())["choice"] in ("torch", "openvino")  # rewritten


@pytest.fixture(scope="module")
def cached_classifier(tmp_path_factory, data_dir):
    """A classifier of another seed than the shipped one, as `load_or_train(seed=1)` caches it (trained small)."""
    folder = tmp_path_factory.mktemp("classifier-cache")
    net, record = CL.train_classifier(data_dir, seed=1, subset=500, epochs=1, progress=False)
    CL.save_classifier(net, record, folder, seed=1)
    return folder


@pytest.mark.parametrize("damage", ["fifo", "[]", "null"])
def test_a_damaged_classifier_cache_is_not_trusted(cached_classifier, tmp_path, data_dir, damage, capsys):
    shutil.copytree(cached_classifier / "classifier", tmp_path / "classifier")
    assert CL.load_cached(tmp_path, data_dir, seed=1) is not None
    _, meta = CL.cache_paths(tmp_path, seed=1)
    meta.unlink()
    if damage == "fifo":
        os.mkfifo(meta)
    else:
        meta.write_text(damage)
    assert CL.load_cached(tmp_path, data_dir, seed=1) is None
    assert ("warning: ignoring the cache entry" in capsys.readouterr().err) == (damage == "fifo")


def test_a_cache_folder_that_is_a_file_is_refused_before_any_work(capsys, trained, tmp_path):
    (tmp_path / "file").write_text("x")
    err = run_cli(capsys, "evaluate", trained, "-n", "10", "--metrics", "classifier", "--cache-dir", tmp_path / "file")
    assert "is not a folder" in err
    assert not (trained / "eval").exists()


# -- 4: two evaluations of one name ----------------------------------------------------------------

def test_a_second_evaluation_of_the_same_name_is_refused_while_the_first_runs(capsys, run_copy, cache):
    with rundir.locked(run_copy, what="evaluation named 'same'", name=".eval-same.lock"):
        err = run_cli(capsys, "evaluate", run_copy, "-n", "10", "--metrics", "classifier", "--name", "same",
                      "--cache-dir", cache)
    assert "in use by another evaluation named 'same'" in err
    assert not (run_copy / "eval").exists()


def test_a_result_written_meanwhile_is_never_replaced(tmp_path):
    target = tmp_path / "same.json"
    target.write_text("first")
    with pytest.raises(FileExistsError):
        files.atomic_write_bytes(target, b"second", new=True)
    assert target.read_text() == "first" and os.listdir(tmp_path) == ["same.json"]


# -- 5, 10, 13: checkpoints ------------------------------------------------------------------------

@pytest.mark.parametrize("link", ["dangling", "loop"])
@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_a_broken_link_as_the_last_checkpoint_is_refused(capsys, run_copy, cache, link, command):
    last = run_copy / "checkpoints" / "last.safetensors"
    last.unlink()
    last.symlink_to("last.safetensors" if link == "loop" else "missing.safetensors")
    before = snapshot(run_copy)
    extra = ["--metrics", "classifier", "--cache-dir", cache] if command == "evaluate" else []
    err = run_cli(capsys, command, run_copy, "-n", "10", *extra)
    assert "symbolic link to nothing" in err and "--checkpoint prev" in err
    assert snapshot(run_copy) == before


def test_a_run_whose_checkpoints_all_diverged_says_to_start_anew(capsys, run_copy):
    for which in ("last", "prev", "best"):
        resave(run_copy / "checkpoints" / f"{which}.safetensors",
               tensors=lambda t: {k: v.fill_(float("nan")) if k.startswith("model/") else v for k, v in t.items()})
    assert cli_mod.main(["train", "--resume", str(run_copy), "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    *warnings, last = err.splitlines()  # one warning per damaged file it fell back from, then the error
    assert len(warnings) == 2 and all("falling back" in w for w in warnings), err
    assert last.startswith("mnistdiff: error: no usable checkpoint") and "start a new run" in last \
        and "lower --lr" in last and "--checkpoint prev" not in err


def test_a_checkpoint_of_another_configuration_in_last_is_skipped_with_a_warning(capsys, run_copy, tmp_path):
    other = tmp_path / "other"
    T.train(C.apply(C.preset("ddpm-default"), dict(subset=32, epochs=1, T=10, batch_size=32, hidden=(8,), lr=1e-3,
                                                   sample_epochs=())), other, progress=False)
    shutil.copy(other / "checkpoints" / "last.safetensors", run_copy / "checkpoints" / "last.safetensors")
    capsys.readouterr()
    T.train(C.from_dict(C.load_file(run_copy / "config.json")), run_copy, resume=True, progress=False)
    err = capsys.readouterr().err
    assert "warning: skipping" in err and "made with another configuration" in err, err


# -- 6, 7, 8: experiment plans ---------------------------------------------------------------------

def test_a_plan_that_is_not_utf8_is_named(capsys, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_bytes(b'[[run]]\npreset = "quick"\nname = "caf\xe9"\n')
    err = run_cli(capsys, "experiment", plan, "--dry-run")
    assert f"plan {plan} is not UTF-8" in err


@pytest.mark.parametrize("entry, message", [
    ('name = "a\\u0000b"', "must be a plain directory name"),
    ('evaluate = { n = 1e12 }', "-n must be a whole number"),
    ('evaluate = { n = 1000000000000 }', "-n=1000000000000 must lie in [10, 100000]"),
    ('evaluate = { name = "../../x" }', "must be a plain file name"),
    ('evaluate = { sampler = "x" }', "unknown --sampler 'x'"),
    ('evaluate = { sampler = "heun" }', "does not serve"),
    ('evaluate = { digit = 3 }', "trained without labels"),
    ('sample = [{ n = 0 }]', "sample n=0 must lie in"),
])
def test_every_stage_option_is_checked_before_training(capsys, tmp_path, entry, message):
    plan = tmp_path / "plan.toml"
    plan.write_text(textwrap.dedent(f"""\
        [[run]]
        preset = "quick"
        {entry}
        """))
    err = run_cli(capsys, "experiment", plan, "--dry-run", "--runs", tmp_path / "runs")
    assert message in err
    assert not (tmp_path / "runs").exists()


# -- 11, 12: digits and the Python API ---------------------------------------------------------------

@pytest.mark.parametrize("digit", ["1,,2", "+7", "\u0667", "7,", ",7", "1.0", "-1"])
def test_digits_are_ascii_0_to_9_with_single_commas(capsys, trained, digit):
    err = run_cli(capsys, "sample", trained, "-n", "4", f"--digit={digit}")
    assert "is not a digit" in err


@pytest.fixture(scope="module")
def loaded(trained):
    return api.load(trained)


@pytest.mark.parametrize("call, kind, name", [
    (lambda r: r.sample(2.5), WrongType, "sample count"),
    (lambda r: r.sample(4.0), WrongType, "sample count"),
    (lambda r: r.sample(True), WrongType, "sample count"),
    (lambda r: r.sample(0), BadArgument, "sample count"),
    (lambda r: r.sample(4, seed=1.5), WrongType, "seed"),
    (lambda r: r.sample(4, seed=-1), BadArgument, "seed=-1 must lie in [0, 9223372036854775807]"),
    (lambda r: r.sample(4, steps=2.5, sampler="ddim"), WrongType, "steps must be int"),
    (lambda r: r.sample(4, eta="0", sampler="ddim"), WrongType, "eta must be float"),
    (lambda r: r.sample(4, digit=7.0), WrongType, "digit"),
    (lambda r: api.to_image(np.zeros((0, 28, 28), np.uint8)), BadArgument, "n >= 1"),
    (lambda r: api.to_image([1, 2]), BadArgument, "to_image takes"),
])
def test_the_api_names_a_bad_argument(loaded, call, kind, name):
    with pytest.raises(kind, match=name.replace("[", r"\[").replace("]", r"\]")):
        call(loaded)
    assert issubclass(kind, (ValueError, TypeError)) and issubclass(kind, UserError)


def test_digit_lists_still_work():
    assert G.labels("3, 5", 4).tolist() == [3, 5, 3, 5]
    assert G.labels([1, 2], 3).tolist() == [1, 2, 1]


@pytest.mark.parametrize("row", ['{"type": "epoch"}', '{"type": "iter", "epoch": 1}', '{"type": "epoch", "step": 3}'])
def test_a_training_row_without_its_counters_is_named(capsys, run_copy, tmp_path, row):
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write(row + "\n")
    err = run_cli(capsys, "report", run_copy, "-o", tmp_path / "report")
    assert "is not a metrics row as mnistdiff writes them" in err and "metrics.jsonl line" in err
