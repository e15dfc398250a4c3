"""Issue 18: the bad inputs that crashed or slipped through, one test per row, plus the side effects.

Each case runs the real CLI entry point in-process and asserts its contract: exit 2 with one line
and no traceback (or, for resume, a fallback to the previous checkpoint with one warning line), and
nothing written where it should not be.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import traceback

import pytest
import torch

from mnistdiff.training import checkpoint, loop as T
from mnistdiff import cli as cli_mod, config as C
from mnistdiff.training.ema import EMA
from mnistdiff import files
from mnistdiff.training import optim
from mnistdiff.training import rundir
from mnistdiff.training.checkpoint import store

FLAGS = dict(subset=64, epochs=2, T=10, batch_size=32, hidden=(8,), sample_epochs=(), checkpoint_every=1)


def run_cli(*args) -> tuple[int, str]:
    """`mnistdiff ARGS` in-process -> (exit code, stderr); an escaping exception is exit 1 plus its traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_mod.main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        except Exception:  # noqa: BLE001 - what the user would see as a traceback
            traceback.print_exc(file=err)
            code = 1
    return code, err.getvalue()


def refused(*args, match: str) -> str:
    code, err = run_cli(*args)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (code, err)
    assert match in err, err
    return err


def fell_back(*args, match: str) -> str:
    code, err = run_cli(*args)
    assert code == 0 and "Traceback" not in err, (code, err)
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings and "falling back" in warnings[0] and match in warnings[0], err
    assert all("moved it to" in w for w in warnings[1:]), err  # a non-file set aside, see row 12
    return err


def snapshot(path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("ck") / "run"
    T.train(C.apply(C.preset("ddpm-default"), dict(FLAGS, ema_decay=0.9)), run, progress=False)
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def resave(path, edit):
    """Rewrite a checkpoint with edit(tensors, config, state) applied and a valid checksum: damage that
    the SHA-256 cannot see (a bug, or a file re-saved by another tool)."""
    tensors, config, state = checkpoint.load(path)
    edit(tensors, config, state)
    checkpoint.save(path, tensors=tensors, config=config, state=state)


def _nan_weights(tensors, config, state):
    for name in tensors:
        if name.startswith(("model/", "ema/")):
            tensors[name] = torch.full_like(tensors[name], float("nan"))


def _steps(run):
    return [row["step"] for row in rundir.read_metrics(run) if row["type"] == "iter"]


# -- rows 1-3, 10-12: what a checkpoint carries ------------------------------------------------------

def test_row1_nonfinite_weights_are_refused_by_sample_and_evaluate(run, tmp_path):
    resave(store.checkpoint_path(run, "last"), _nan_weights)
    before = snapshot(run)
    refused("sample", run, "-n", "4", match="non-finite values in")
    refused("evaluate", run, "-n", "10", "--metrics", "classifier", match="non-finite values in")
    refused("sample", store.checkpoint_path(run, "last"), "-n", "4", "--out", tmp_path / "x.png", match="non-finite")
    assert snapshot(run) == before and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("damage", ["param_groups", "rng_list", "rng_tensor"])
def test_row2_damaged_state_json_with_a_valid_hash_falls_back(run, damage):
    def edit(tensors, config, state):
        if damage == "param_groups":
            state["optimizer"]["param_groups"] = [{"lr": "fast"}]
        elif damage == "rng_list":
            state["rng"]["numpy"][1] = state["rng"]["numpy"][1][:100]
        else:
            tensors["rng/train"] = tensors["rng/train"][:17].clone()

    resave(store.checkpoint_path(run, "last"), edit)
    fell_back("train", "--resume", run, "--epochs", "3", "--quiet", match="checkpoint")
    assert _steps(run) == list(range(1, 7))  # epoch 2 redone from prev, no step twice


def test_row3_the_checksum_covers_the_header(run, tmp_path):
    last = store.checkpoint_path(run, "last")
    raw = last.read_bytes()
    assert raw.count(b'\\"T\\": 10') == 1
    last.write_bytes(raw.replace(b'\\"T\\": 10', b'\\"T\\": 90'))  # same length, tensors intact
    before = snapshot(run)
    refused("sample", run, "-n", "4", match="SHA-256")
    refused("evaluate", run, "-n", "10", "--metrics", "classifier", match="SHA-256")
    assert snapshot(run) == before
    fell_back("train", "--resume", run, "--epochs", "3", "--quiet", match="SHA-256")


def test_row10_a_checkpoint_of_another_config_is_refused(run, tmp_path):
    other = C.apply(C.preset("ddpm-default"), dict(FLAGS, net="unet", hidden=(8,), ema_decay=0.9))
    net, _ = T.build(other)
    unet_run = tmp_path / "unet"
    (unet_run / store.CKPT_DIR).mkdir(parents=True)
    T.save_checkpoint(unet_run, other, net, optim.optimizer(net, other.train), T.State(), torch.Generator(),
                      ema=EMA(net, 0.9))
    shutil.copy(store.checkpoint_path(unet_run, "last"), store.checkpoint_path(run, "last"))
    before = snapshot(run)
    refused("sample", run, "-n", "4", match="different configuration")
    refused("sample", store.checkpoint_path(run, "last"), "-n", "4", match="model.net is 'unet'")
    refused("evaluate", run, "-n", "10", "--metrics", "classifier", match="different configuration")
    assert snapshot(run) == before


def test_row11_nonfinite_weights_on_resume_fall_back_saying_so(run):
    resave(store.checkpoint_path(run, "last"), _nan_weights)
    err = fell_back("train", "--resume", run, "--epochs", "3", "--quiet", match="non-finite values in")
    assert "loss became" not in err
    assert _steps(run) == list(range(1, 7))


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
def test_row12_a_fifo_or_directory_as_last_is_named_and_resume_falls_back(run, kind, tmp_path):
    last = store.checkpoint_path(run, "last")
    last.unlink()
    if kind == "directory":
        last.mkdir()
        (last / "keep.txt").write_text("mine")
    else:
        os.mkfifo(last)
    refused("sample", run, "-n", "4", match=f"is a {kind}")
    fell_back("train", "--resume", run, "--epochs", "3", "--quiet", match=f"is a {kind}")
    assert last.is_file() and checkpoint.load(last)[2]["epoch"] == 3
    aside = [p for p in last.parent.iterdir() if ".not-a-checkpoint-" in p.name]
    assert len(aside) == 1  # renamed out of the way, never deleted
    if kind == "directory":
        assert (aside[0] / "keep.txt").read_text() == "mine"


# -- rows 4-9: flags and folders -----------------------------------------------------------------

def test_row4_absurd_sample_counts_are_refused_before_any_work(run):
    before = snapshot(run)
    refused("sample", run, "-n", "1000000000000", match="sample count=1000000000000 must lie in [1, 100000]")
    refused("evaluate", run, "-n", "1000000000000", match="-n=1000000000000 must lie in [10, 100000]")
    assert snapshot(run) == before and not (run / "eval").exists()


def test_row5_sample_batch_size_zero(run):
    before = snapshot(run)
    refused("sample", run, "-n", "10", "--batch-size", "0", match="batch size=0 must lie in [1, 100000]")
    refused("sample", run, "-n", "10", "--batch-size", "-4", match="batch size=-4 must lie in [1, 100000]")
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["../../escape", "../x", "a/b", "..", ""])
def test_row6_an_evaluation_name_is_a_file_name(run, name):
    outside = set(run.parent.parent.rglob("*"))
    refused("evaluate", run, "-n", "10", "--metrics", "classifier", "--name", name, match="plain file name")
    assert set(run.parent.parent.rglob("*")) == outside


@pytest.mark.parametrize("lr", ["inf", "-inf", "1e400"])
def test_row7_an_infinite_learning_rate_is_refused_before_anything_is_created(tmp_path, lr):
    refused("train", "--run", tmp_path / "run", f"--lr={lr}", "--subset", "64", match="must be positive and finite")
    assert not (tmp_path / "run").exists()


def test_row8_a_subset_larger_than_the_split(tmp_path, monkeypatch):
    def trains(*args, **kwargs):  # what the old code went on to do, for 100 epochs of 60,000 images
        raise AssertionError("training started")

    monkeypatch.setattr(T, "_train_locked", trains)
    refused("train", "--run", tmp_path / "run", "--subset", "1000000", match="count up to the 60000 training images")
    assert not (tmp_path / "run").exists()


def test_row9_an_immutable_checkpoints_folder_is_refused_on_resume(run):
    folder = run / store.CKPT_DIR
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root on a filesystem that supports it")
    try:
        before = snapshot(run)
        refused("train", "--resume", run, "--epochs", "3", "--quiet", match=f"cannot write to {folder}")
        assert snapshot(run) == before
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


# -- side effects ----------------------------------------------------------------------------------

def test_temporaries_of_a_killed_writer_are_removed_on_resume(run):
    stale = [run / store.CKPT_DIR / ".next.safetensors.tmp-999999", run / ".metrics.jsonl.tmp-999998"]
    for p in stale:
        p.write_bytes(b"\0" * 2_000_000)
    code, err = run_cli("train", "--resume", run, "--epochs", "3", "--quiet")
    assert code == 0, err
    assert not any(p.exists() for p in stale)
    assert not [p for p in run.rglob("*") if files.TMP_TAG in p.name]


def test_a_failed_evaluate_leaves_no_empty_eval_folder(run):
    refused("evaluate", run, "-n", "10", "--metrics", "classifier", "--n-ref", "1", match="--n-ref 1")
    assert not (run / "eval").exists()


@pytest.mark.parametrize("out", ["x.txt", "x", "x.npy"])
def test_sample_out_must_be_a_png(run, tmp_path, out):
    refused("sample", run, "-n", "2", "--out", tmp_path / out, match="must name a .png file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_rebuilt_report_keeps_the_users_files_in_img(run, tmp_path):
    out = tmp_path / "report"
    assert run_cli("report", run, "-o", out)[0] == 0
    images = sorted(p.name for p in (out / "img").iterdir())
    (out / "img" / "notes.txt").write_text("mine")
    (out / "img" / images[0]).write_bytes(b"stale")
    assert json.loads((out / ".mnistdiff-report").read_text())["files"] == [f"img/{n}" for n in images]
    assert run_cli("report", run, "-o", out)[0] == 0
    assert (out / "img" / "notes.txt").read_text() == "mine"
    assert (out / "img" / images[0]).read_bytes() != b"stale"  # the report's own images are rewritten


def test_checkpoints_of_the_first_format_still_load_with_the_same_content_checks(run):
    """Runs trained before the header joined the checksum resume and sample as before."""
    from safetensors.torch import save as st_save

    last = store.checkpoint_path(run, "last")
    tensors, config, state = checkpoint.load(last)

    def write_v1(tensors):
        meta = {"format": checkpoint.FORMAT_1, "config": json.dumps(config, sort_keys=True),
                "state": json.dumps(state, sort_keys=True), "sha256": checkpoint.format._digest(tensors)}
        last.write_bytes(st_save(tensors, metadata=meta))

    write_v1(tensors)
    assert checkpoint.load(last)[2] == state
    _nan_weights(tensors, config, state)
    write_v1(tensors)
    refused("sample", run, "-n", "2", match="non-finite values in")


def test_runs_that_use_no_later_feature_save_no_later_fields_and_still_work(run, tmp_path):
    """Fields added after the first checkpoints (EDM's sigma_data/p_mean/p_std, the labels' conditional/
    label_dropout) are left out of the files of a run that does not use them, as those of an older run
    lack them: such a run samples and resumes, its defaults changing nothing."""
    _, config, _ = checkpoint.load(store.checkpoint_path(run, "last"))
    saved = json.loads((run / "config.json").read_text())
    for field in C.INTRODUCED_WITH:
        assert field not in config[C.FIELD_SECTION[field]] and field not in saved[C.FIELD_SECTION[field]]
    code, err = run_cli("sample", run, "-n", "2", "--out", tmp_path / "old.png")
    assert code == 0 and (tmp_path / "old.png").exists(), err
    code, err = run_cli("train", "--resume", run, "--epochs", "3", "--quiet")
    assert code == 0 and "Traceback" not in err, err
    assert _steps(run) == list(range(1, 7))  # epoch 3 ran on from epoch 2 (2 steps an epoch)


@pytest.mark.parametrize("feature, value, match", [("degradation", "edm", "missing p_mean, p_std, sigma_data"),
                                                   ("conditional", True, "missing label_dropout")])
def test_a_checkpoint_using_a_later_feature_without_its_fields_is_refused(run, tmp_path, feature, value, match):
    """The same fields missing from a checkpoint that uses their feature: a damaged header, not an old run."""
    def edit(tensors, config, state):
        config[C.FIELD_SECTION[feature]][feature] = value
    resave(store.checkpoint_path(run, "last"), edit)
    refused("sample", store.checkpoint_path(run, "last"), "-n", "2", "--out", tmp_path / "x.png", match=match)


@pytest.mark.parametrize("value", [None, 0, [], "maybe"])
def test_a_switch_that_is_not_a_boolean_is_refused(run, tmp_path, value):
    """Found by test_checkpoint_properties: bool(None) read a damaged channels_last as False, so a header
    with null there passed as the run's own config. A switch is true/false (or a CLI spelling of them)."""
    resave(store.checkpoint_path(run, "last"), lambda tensors, config, state: config["train"].update(channels_last=value))
    refused("sample", run, "-n", "2", "--out", tmp_path / "x.png", match="channels_last")
