"""The guidance table (guidance_table.py), its results script and its place in the report (issue 17)."""

import json
import subprocess
import sys

import pytest
import torch

from mnistdiff import config as C
from mnistdiff.evaluation import guidance_table as GT
from mnistdiff.training import loop as T
from mnistdiff.report.build import write_report

from .conftest import ROOT, TINY
from mnistdiff.evaluation import evaluator

SCRIPT = ROOT / "scripts" / "conditional_results.py"


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gt") / "cond"
    T.train(C.apply(C.preset("ddpm-default-cond"), dict(TINY, epochs=1, sample_epochs=())), run, progress=False)
    return run


def test_kid_per_digit_compares_each_digit_with_its_own_references():
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(10, 16, generator=g)
    real_labels = torch.arange(10).repeat(20)
    real = centres[real_labels] + torch.randn(200, 16, generator=g)
    digits = torch.arange(10).repeat(10)
    right = centres[digits] + torch.randn(100, 16, generator=g)
    wrong = centres[(digits + 1) % 10] + torch.randn(100, 16, generator=g)  # every sample is the next digit
    good, bad = evaluator.kid_per_digit(real, real_labels, right, digits), evaluator.kid_per_digit(real, real_labels, wrong, digits)
    assert all(b > 10 * max(gd, 1e-3) for gd, b in zip(good, bad))
    few = evaluator.kid_per_digit(real, real_labels, right[:30], digits[:30])  # 3 samples per digit: too few
    assert few == [None] * 10


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_script_measures_writes_and_reuses_and_the_report_shows_it(cond_run, cache, tmp_path):
    out = tmp_path / "results" / "conditional"
    args = [cond_run, "-n", "100", "--weights", "0", "2", "--metrics", "classifier", "--steps", "4",
            "--runtime", "torch", "--out", out, "--cache-dir", cache]
    r = run_script(*args)
    assert r.returncode == 0, r.stderr
    table = json.loads(out.with_suffix(".json").read_text())["cond"]
    assert [row["w"] for row in table["rows"]] == [0.0, 2.0]
    for row in table["rows"]:
        assert 0 <= row["digit_agreement"] <= 1 and len(row["digit_agreement_per_digit"]) == 10
        assert GT.grid_path(cond_run, row["w"]).is_file()
    md = out.with_suffix(".md").read_text()
    assert "| 0 |" in md and "| 2 |" in md and "img/conditional-cond.png" in md
    assert (out.parent / "img" / "conditional-cond.png").is_file()
    stamp = (cond_run / GT.FILE).stat().st_mtime_ns
    r = run_script(*args)
    assert r.returncode == 0 and "reusing" in r.stderr and (cond_run / GT.FILE).stat().st_mtime_ns == stamp

    html = write_report([cond_run], tmp_path / "report").read_text()
    assert "Classifier-free guidance" in html and html.count("guidance 2") >= 1
    assert "guidance-w0" not in (tmp_path / "report" / "report.md").read_text().split("Cold diffusion panels")[1]


@pytest.mark.slow
def test_script_refusals(cond_run, tmp_path):
    plain = tmp_path / "plain"
    T.train(C.apply(C.preset("ddpm-default"), dict(TINY, epochs=1, sample_epochs=())), plain, progress=False)
    for args, match in [((plain, "-n", "100", "--metrics", "classifier"), "trained without labels"),
                        ((cond_run, "-n", "150", "--metrics", "classifier"), "multiple of 100"),
                        ((tmp_path / "none",), "not a run directory")]:
        r = run_script(*args, "--out", tmp_path / "r" / "c")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, r.stderr
        assert not (tmp_path / "r").exists()


def test_a_report_without_guidance_tables_has_no_such_section(tmp_path):
    run = tmp_path / "plain"
    T.train(C.apply(C.preset("ddpm-default"), dict(TINY, epochs=1, sample_epochs=())), run, progress=False)
    assert "Classifier-free guidance" not in write_report([run], tmp_path / "report").read_text()
