"""The experiment runner: plans parse strictly, finished runs are skipped, interrupted ones resumed."""

from __future__ import annotations

import json

import pytest

from mnistdiff import config as C, experiment as X
from mnistdiff.cli import main
from mnistdiff.errors import UserError
from mnistdiff.training.loop import train
from mnistdiff.training import rundir

TINY = """
[defaults]
subset = 64
batch_size = 32
epochs = 2
T = 10
hidden = [8, 8]
threads = 1
sample_epochs = [1]

[[run]]
name = "a"
preset = "ddpm-default"
sample = [{ n = 4, seed = 1 }]

[[run]]
name = "b"
preset = "ddpm-testing2"
overrides = { T = 12 }
"""


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _steps(run):
    return [r["step"] for r in rundir.read_metrics(run) if r["type"] == "iter"]


@pytest.mark.parametrize("text, message", [
    ("[[run]]\nname = 'x'\n", "missing preset"),
    ("[[run]]\npreset = 'nope'\n", "unknown preset 'nope'"),
    ("[[run]]\npreset = 'ddpm-default'\noverrides = { lr = -1 }\n", "lr=-1"),
    ("[[run]]\npreset = 'ddpm-default'\noverrides = { learning_rate = 1 }\n", "unknown config key 'learning_rate'"),
    ("[[run]]\npreset = 'ddpm-default'\ncolour = 1\n", "unknown key 'colour'"),
    ("[[run]]\npreset = 'ddpm-default'\nsample = [{ start = 'moon' }]\n", "unknown start 'moon'"),
    ("[[run]]\npreset = 'ddpm-default'\nname = '../x'\n", "plain directory name"),
    ("[[run]]\npreset = 'ddpm-default'\nevaluate = { samples = 5 }\n", "unknown evaluate option 'samples'"),
    ("runs = 1\n", "unknown key 'runs'"),
    ("[defaults]\nlr = 1e-3\n", "at least one [[run]]"),
    ("[[run]\n", "not valid TOML"),
])
def test_bad_plans_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")) as e:
        X.resolve([str(path)])
    assert "\n" not in str(e.value)


def test_duplicate_names_and_unknown_items_are_refused(plan_file):
    with pytest.raises(UserError, match="appears twice"):
        X.resolve([str(plan_file), str(plan_file)])
    with pytest.raises(UserError, match="neither a plan file"):
        X.resolve(["no-such-plan"])


def test_shipped_plans_hold_the_reports_runs():
    full, quick = X.resolve(["report-study"]), X.resolve(["report-study-quick"])
    names = [r.name for r in full.runs]
    assert names[:4] == ["ddpm-default", "ddpm-testing2", "cold-row-random", "cold-col-random"]
    assert {"cold-row-random-g4", "cold-col-random-g4"} <= set(names)
    assert [r.name for r in quick.runs] == names
    for f, q in zip(full.runs, quick.runs):
        full = {k: v for sec in f.config.to_dict().values() for k, v in sec.items()}
        preset = {k: v for sec in C.preset(f.preset).to_dict().values() for k, v in sec.items()}
        assert {k for k in full if full[k] != preset[k]} <= {"sample_epochs"}  # full length: only snapshots added
        assert f.evaluate["n"] == (2_000 if f.config.process.degradation == "gaussian" else 10_000)
        assert q.config.process.degradation == f.config.process.degradation
        assert q.config.process.T == f.config.process.T  # same process: only data and epochs shrink
        assert q.config.train.lr == f.config.train.lr and q.config.model == f.config.model


@pytest.mark.slow  # three tiny trainings: ~10 s alone, ~20 s on a shared machine
def test_runs_new_resumes_interrupted_and_skips_finished(plan_file, tmp_path):
    runs_dir = tmp_path / "runs"
    plan = X.resolve([str(plan_file)])
    b = plan.runs[1]
    # interrupt run b after 3 of its 4 steps, with a checkpoint at step 2
    cfg_b = C.apply(b.config, {"checkpoint_every": 2})
    b.config = cfg_b
    train(cfg_b, runs_dir / "b", progress=False, stop_after_steps=3)
    assert X.run_status(runs_dir / "b", b) == "resume"

    done = X.run_plan(plan, runs_dir, progress=False, log=lambda m: None)
    assert [(n, a) for n, a, _ in done] == [("a", "new, sample"), ("b", "resume")]
    for name in ("a", "b"):
        assert _steps(runs_dir / name) == list(range(1, 5))  # every step logged once, resumed or not
        assert X.run_status(runs_dir / name, plan.runs[0 if name == "a" else 1]) == "finished"
    grid = runs_dir / "a" / "samples" / "sample-ddpm-n4-seed1.png"
    assert grid.is_file()
    record = json.loads((runs_dir / "a" / X.RECORD).read_text())
    assert record["plan"] == "tiny" and record["done"] == ['sample {"n": 4, "seed": 1}']
    assert record["sessions"][0]["machine"]["cpu_count"] >= 1

    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*") if p.is_file()}
    again = X.run_plan(plan, runs_dir, progress=False, log=lambda m: None)
    assert [a for _, a, _ in again] == ["nothing to do", "nothing to do"]
    assert before == {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*") if p.is_file()}


def test_run_killed_before_its_first_checkpoint_starts_over(plan_file, tmp_path):
    plan = X.resolve([str(plan_file)])
    plan.runs = plan.runs[1:]
    train(plan.runs[0].config, tmp_path / "b", progress=False, stop_after_steps=1)
    assert X.run_status(tmp_path / "b", plan.runs[0]) == "restart"
    X.run_plan(plan, tmp_path, progress=False, log=lambda m: None)
    assert _steps(tmp_path / "b") == list(range(1, 5))


def test_a_run_with_another_config_stops_the_plan_before_any_training(plan_file, tmp_path):
    plan = X.resolve([str(plan_file)])
    other = C.apply(plan.runs[1].config, {"lr": 1e-3})
    rundir.create(tmp_path / "b", other.to_json())
    with pytest.raises(UserError, match=r"lr: 0.001 in the run, 0.0004 in the plan") as e:
        X.run_plan(plan, tmp_path, progress=False, log=lambda m: None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "a").exists()


def test_cli_dry_run_and_errors(plan_file, tmp_path, capsys):
    assert main(["experiment", str(plan_file), "--runs", str(tmp_path / "r"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "[1/2] a: training" in err and "[2/2] b: training" in err
    assert not (tmp_path / "r").exists()
    assert main(["experiment", "not-a-plan", "--runs", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("mnistdiff: error: 'not-a-plan' is neither")


def test_readme_results_section_is_generated_from_the_runs(plan_file, tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "readme_results.py"
    spec = importlib.util.spec_from_file_location("readme_results", script)
    rr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rr)
    plan = X.resolve([str(plan_file)])
    plan.runs = plan.runs[:1]
    X.run_plan(plan, tmp_path / "runs", progress=False, log=lambda m: None)
    readme = tmp_path / "README.md"
    readme.write_text(f"# mnistdiff\n\nintro\n\n{rr.START}\nold, typed by hand\n{rr.END}\n\n## After\n")
    run = str(tmp_path / "runs" / "a")
    assert rr.main([run, "--readme", str(readme), "--check"]) == 1  # stale
    assert rr.main([run, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "typed by hand" not in text and text.startswith("# mnistdiff\n\nintro") and text.endswith("## After\n")
    section = text.split(rr.START)[1]
    assert "| a | DDPM" in section and "plan: tiny" in section and "logical CPUs" in section
    assert "| Final loss |" in section and "| FID | not measured |" in section
    assert rr.main([run, "--readme", str(readme), "--check"]) == 0
    assert rr.main([str(tmp_path), "--readme", str(readme)]) == 2
