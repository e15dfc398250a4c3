"""Snapshots: training keeps the checkpoint of each --sample-epochs epoch; `evaluate --snapshots` scores each
once, beside or after training; the report and the study's README read the rows."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnistdiff.training import checkpoint, loop as T
from mnistdiff import cli as cli_mod, config as C
from mnistdiff.report import build

from .conftest import ROOT
from .test_bad_inputs import run_cli
from mnistdiff.training import rundir
from mnistdiff.training.checkpoint import store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("snap") / "run"
    cfg = C.apply(C.preset("cold-row-random-g4"), dict(subset=64, epochs=2, batch_size=32, hidden=(8,),
                                                       sample_epochs=(1,)))
    T.train(cfg, run, progress=False)
    return run


def test_training_keeps_the_sample_epochs_and_the_last(trained):
    assert list(store.snapshots(trained)) == [1, 2]
    tensors, _, state = checkpoint.load(store.snapshot_path(trained, 2))
    assert state["epoch"] == 2
    last = checkpoint.load(store.checkpoint_path(trained, "last"))[0]
    assert all(torch.equal(tensors[k], last[k]) for k in last)  # the epoch's checkpoint itself
    assert checkpoint.load(store.snapshot_path(trained, 1))[2]["epoch"] == 1


def evaluate_snapshots(capsys, run, cache) -> list[dict]:
    code = cli_mod.main(["evaluate", str(run), "--snapshots", "-n", "10", "--metrics", "classifier", "--cache-dir",
                         str(cache), "--quiet"])
    assert code == 0, capsys.readouterr().err
    return rundir.epoch_evals(run)


def test_each_snapshot_is_evaluated_once(capsys, trained, cache, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    rows = evaluate_snapshots(capsys, run, cache)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["source"] == "snapshot" and r["n"] == 10 for r in rows)
    assert rows[0]["sampler"] == "cold-alg2" and rows[0]["start"] == "gmm"
    assert evaluate_snapshots(capsys, run, cache) == rows  # nothing new: nothing added
    T.train(C.apply(C.from_dict(C.load_file(run / "config.json")), {"epochs": 3}), run, resume=True, progress=False)
    again = evaluate_snapshots(capsys, run, cache)
    assert again[:2] == rows and [r["epoch"] for r in again] == [1, 2, 3]
    # The report draws them as the per-epoch series
    data = build.load_run(run)
    assert [r["epoch"] for r in data.of_type("eval")] == [1, 2, 3]


def test_the_same_seed_gives_the_same_row(capsys, trained, cache, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        shutil.copytree(trained, d)
    drop = ("timing", "time_s")
    ra, rb = ([{k: v for k, v in r.items() if k not in drop} for r in evaluate_snapshots(capsys, d, cache)]
              for d in (a, b))
    assert ra == rb


def test_a_run_without_snapshots_is_refused(capsys, tmp_path):
    run = tmp_path / "run"
    T.train(C.apply(C.preset("ddpm-default"), dict(subset=32, epochs=1, T=10, batch_size=32, hidden=(8,))), run,
            progress=False)
    shutil.rmtree(run / store.SNAPSHOT_DIR)
    capsys.readouterr()
    err = run_cli(capsys, "evaluate", run, "--snapshots", "-n", "10", "--metrics", "classifier")
    assert "has no snapshots yet" in err


def test_a_second_snapshot_evaluation_is_refused_while_one_runs(capsys, trained, cache, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "eval").mkdir()
    with rundir.locked(run / "eval", what="evaluation of snapshots"):
        err = run_cli(capsys, "evaluate", run, "--snapshots", "-n", "10", "--metrics", "classifier",
                      "--cache-dir", cache)
    assert "in use by another evaluation of snapshots" in err
    assert rundir.epoch_evals(run) == []


def test_the_study_readme_puts_the_report_beside_the_runs(capsys, trained, cache, tmp_path):
    saved = tmp_path / "report-study"
    shutil.copytree(trained, saved / "cold-row-random-g4")
    evaluate_snapshots(capsys, saved / "cold-row-random-g4", cache)
    (saved / "machines.jsonl").write_text(json.dumps({"date": "d", "cpu": "c", "precision": "fp32",
                                                      "epochs": {"cold-row-random-g4": 2}}) + "\n")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "study_readme.py"), str(saved)], check=True)
    text = (saved / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cold-row-random-g4 | Table 3.2"))
    assert "80 / 2 |" in row and "189.84 / not yet" in row  # the preset's 80 epochs were cut to 2 here
    assert "| 2 | not yet | not yet |" in text  # epoch 2's row, classifier metrics only
    assert "- d: c (fp32 training); epochs reached: cold-row-random-g4 2" in text
    assert "No run has its final evaluation yet." in text


def test_the_study_readme_tabulates_fid_by_count_and_the_copy_rate():
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_readme", ROOT / "scripts" / "study_readme.py")
    readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readme)
    # The keys evaluate_run writes (evaluation/evaluate.py), for a DDPM final and a cold one without --memorisation.
    ddpm = {"n": 2000, "fid": 60.0, "fid_by_count": {"500": 75.0, "1000": 66.0},
            "memorisation": {"pixel": {"copy_rate": 0.006}, "classifier": {"copy_rate": 0.0185}}}
    cold = {"n": 10000, "fid": 100.0, "fid_by_count": {"500": 130.0, "1000": 120.0, "2000": 110.0, "5000": 104.0}}
    lines = readme.count_table({"ddpm-default": {"final": ddpm}, "cold-row-random": {"final": cold},
                                "ddpm-testing2": {"final": None}})
    assert lines[0] == ("| Run | FID at 500 | FID at 1,000 | FID at 2,000 | FID at 5,000 | FID at 10,000 | copy rate "
                        "(pixels / classifier) |")
    assert lines[2] == "| ddpm-default | 75 | 66 | 60 | - | - | 0.60% / 1.85% |"
    assert lines[3] == "| cold-row-random | 130 | 120 | 110 | 104 | 100 | not measured |"
    assert len(lines) == 4  # no row for a run without its final


def test_only_the_epochs_asked_for_are_evaluated(capsys, trained, cache, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert cli_mod.main(["evaluate", str(run), "--snapshots", "--snapshot-epochs", "2", "-n", "10", "--metrics",
                         "classifier", "--cache-dir", str(cache), "--quiet"]) == 0
    assert [r["epoch"] for r in rundir.epoch_evals(run)] == [2]


@pytest.mark.parametrize("flag", [["--name", "x"], ["--sampler", "cold-alg1"], ["--seed", "3"], ["--real-rows"],
                                  ["--steps", "5"]])
def test_options_that_do_not_apply_to_snapshots_are_refused(capsys, trained, flag):
    err = run_cli(capsys, "evaluate", trained, "--snapshots", "-n", "10", *flag)
    assert "does not apply" in err and flag[0] in err


@pytest.mark.slow  # the study's own script, in real processes
def test_the_study_carries_an_unfinished_final_evaluation_to_the_next_machine(trained, tmp_path):
    import os

    runs, saved = tmp_path / "runs", tmp_path / "saved"
    shutil.copytree(trained, runs / "cold-row-random-g4")
    partial = runs / "cold-row-random-g4" / "eval" / "final.partial"
    partial.mkdir(parents=True)
    for name in ("request.json", "batch-0000.npy", "batch-0000.rng.npy"):
        (partial / name).write_bytes(name.encode())
    env = {**os.environ, "RUNS": str(runs), "SAVED": str(saved), "BIN": str(Path(sys.executable).parent)}

    def study(step):
        r = subprocess.run(["bash", str(ROOT / "scripts" / "report_study.sh"), step], env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr

    study("save")
    kept = saved / "cold-row-random-g4" / "eval" / "final.partial"
    assert sorted(p.name for p in kept.iterdir()) == ["batch-0000.npy", "batch-0000.rng.npy", "request.json"]
    shutil.rmtree(runs)  # a new machine
    study("restore")
    assert (partial / "batch-0000.rng.npy").read_bytes() == b"batch-0000.rng.npy"
    shutil.rmtree(partial)  # the final evaluation finished there: its batches are no longer needed
    study("save")
    assert not kept.exists()
