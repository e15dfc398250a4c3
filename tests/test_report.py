"""The report: built from small real runs, opened in a real headless Chromium, checked like a reader would."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mnistdiff import config as C
from mnistdiff.report import build as report, readers as M
from mnistdiff.cli import main
from mnistdiff.errors import UserError
from mnistdiff.sampling.generate import sample_run
from mnistdiff.report.cold import write_for_run
from mnistdiff.training.loop import train

from .chromium import Chromium, find_chromium
from mnistdiff.training import rundir

pytestmark = pytest.mark.slow  # the module's fixture trains four tiny runs: ~30 s on 2 busy cores
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TINY = dict(subset=128, batch_size=32, epochs=2, sample_epochs=(1,), hidden=(8, 8), threads=1, seed=3)


def _tiny(preset: str, **over) -> C.Config:
    defaults = {"T": 10} if C.preset(preset).process.degradation == "gaussian" else {}
    return C.apply(C.preset(preset), {**TINY, **defaults, **over})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Real tiny runs: two DDPM runs, a cold one, and one cut short."""
    root = tmp_path_factory.mktemp("study")
    plan = {"ddpm-default": _tiny("ddpm-default"), "ddpm-testing2": _tiny("ddpm-testing2", T=15),
            "cold-row-random": _tiny("cold-row-random")}
    for name, cfg in plan.items():
        train(cfg, root / name, progress=False)
    # the cold panels of Figs 2.2 and 2.6 come from `mnistdiff sample`
    sample_run(root / "cold-row-random", n=16, start="conditional")
    write_for_run(root / "cold-row-random", start="conditional")
    train(_tiny("ddpm-default", checkpoint_every=1), root / "unfinished", progress=False, stop_after_steps=2)
    return root, [root / n for n in plan] + [root / "unfinished"]


def test_report_opens_in_chromium(study, tmp_path):
    root, runs = study
    html = report.write_report(runs, tmp_path / "report")
    binary = find_chromium()
    if binary is None:
        message = "Chromium is not installed: run `make browser` (apt-get install chromium) to check the report"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Chromium(binary) as browser:
        page = browser.open(html.resolve().as_uri())
        seen = browser.evaluate(page, """(async () => {
            const imgs = Array.from(document.images);
            await Promise.all(imgs.map(i => i.decode().catch(() => null)));
            const rows = id => document.getElementById(id).tBodies[0].rows.length;
            return {images: imgs.map(i => ({ok: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                                            inline: i.src.startsWith("data:image/png;base64,")})),
                    tables: {runs: rows("runs"), hyper: rows("hyperparameters"), metrics: rows("final-metrics")},
                    headers: Array.from(document.querySelectorAll("#hyperparameters thead th")).map(t => t.textContent),
                    external: document.querySelectorAll("script, link, iframe, object").length,
                    missing: document.querySelectorAll(".missing").length};
        })()""")
        browser.screenshot(page, ARTIFACTS / "report.png")
        errors = browser.console_errors()
    assert errors == []
    n_grids = sum(len(list((r / "samples").glob("*.png"))) for r in runs)
    assert len(seen["images"]) >= 2 + n_grids  # activation + loss figures, every saved grid
    assert all(i["ok"] and i["w"] > 0 and i["h"] > 0 and i["inline"] for i in seen["images"])
    assert seen["tables"]["runs"] == len(runs)
    assert seen["tables"]["hyper"] == len(M.HYPERPARAMETERS) + 1
    assert seen["tables"]["metrics"] >= 1 + len(M.REQUIRED_SERIES)  # final loss, FID, IS at least
    assert seen["headers"] == ["Hyperparameter"] + [r.name for r in runs]
    assert seen["external"] == 0
    assert seen["missing"] >= 2  # FID and IS against epoch were not measured in these runs
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_markdown_twin_and_self_contained_html(study, tmp_path):
    _, runs = study
    out = tmp_path / "r"
    report.write_report(runs, out)
    md = (out / "report.md").read_text()
    refs = re.findall(r"\]\((img/[^)]+\.png)\)", md)
    assert refs and all((out / ref).is_file() for ref in refs)
    html = (out / "index.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)  # nothing loaded from outside the file
    assert html.count("<img") == len(set(refs))
    assert "Not measured" in html and "not measured" in md.lower()
    assert "Original | Degraded | Direct prediction | Algorithmic generation" in md
    # the unfinished run stopped inside epoch 1: its column says so instead of inventing a final loss
    row = next(line for line in md.splitlines() if line.startswith("| Final loss"))
    assert row.count("not measured") == 1


def test_hyperparameter_table_reads_each_runs_config(study):
    _, runs = study
    data = report.collect(runs)
    table = dict((row[0], row[1:]) for row in report.hyperparameters(data)[1].rows)
    assert table["Number of timesteps"][:2] == ["10", "15"]
    assert table["Learning rate"][:2] == ["0.0002", "0.0004"]  # Tables 1.1 and 1.2
    assert table["Number of hidden layers & units"][0] == "(8, 8)"


def test_a_run_still_training_is_read_up_to_its_last_whole_line(study, tmp_path):
    import shutil

    _, runs = study
    live = tmp_path / "live"
    shutil.copytree(runs[0], live)
    n = len(report.load_run(live).rows)
    with open(live / "metrics.jsonl", "a") as f:
        f.write('{"type": "iter", "epoch": 3, "st')  # the training process is mid-write
    assert len(report.load_run(live).rows) == n


def test_refuses_to_overwrite_a_folder_it_did_not_make(study, tmp_path):
    _, runs = study
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a mnistdiff report"):
        report.write_report(runs[:1], precious)
    assert sorted(p.name for p in precious.iterdir()) == ["notes.txt"]
    out = tmp_path / "again"
    report.write_report(runs[:2], out)
    report.write_report(runs[:1], out)  # a previous report is replaced, stale images removed
    assert not any("testing2" in p.name for p in (out / "img").iterdir())


# Rows and JSON as evaluate.py writes them (log_epoch_eval, evaluate_run): the readers are tested on that format.
def _eval_row(epoch):
    return {"type": "eval", "epoch": epoch, "step": 4 * epoch, "n": 100, "classifier_is": 2.0 + epoch,
            "classifier_is_std": 0.1, "fd_classifier": 50.0 / epoch, "class_histogram": [10] * 10,
            "class_imbalance": 0.0, "fid": 300.0 / epoch, "kid": 0.3 / epoch, "kid_std": 0.01,
            "timing": {"metrics_s": 1.0, "sampling_s": 2.0}, "time_s": 3.0}


def test_metric_series_are_plotted_and_missing_ones_named(study):
    _, runs = study
    data = report.collect(runs[:2])
    data[0].rows += [_eval_row(e) for e in (1, 2)]
    blocks = report.metrics_by_epoch(data)
    names = [b.name for b in blocks if isinstance(b, report.Image)]
    missing = [b.text for b in blocks if isinstance(b, report.Missing)]
    assert names[:2] == ["epoch-fid", "epoch-kid"]
    assert {"epoch-classifier-is", "epoch-fd-classifier", "epoch-class-imbalance"} <= set(names)
    assert all(b.png.startswith(b"\x89PNG") for b in blocks if isinstance(b, report.Image))
    assert any(m.startswith("Inception Score against epoch") for m in missing)  # never the classifier IS instead
    assert any(data[1].name in m for m in missing)
    hist = report.class_histograms(data)
    assert isinstance(hist[1], report.Image) and data[1].name in hist[2].text


def test_final_metrics_table_from_eval_json(study):
    _, runs = study
    data = report.collect(runs[:2])
    result = {k: v for k, v in _eval_row(4).items() if k not in ("type", "epoch", "step")}
    result |= {"inception_is": 1.4, "inception_is_std": 0.12,
               "real": {"floor_split": "train", "floor_count": 2000, "classifier_is": 9.8, "classifier_is_std": 0.05,
                        "fd_classifier_floor": 2.5, "fid_floor": 1.5, "floor_reference_cache": {"reused": True}},
               "samples": {"run": "x", "checkpoint": "last", "sampler": "ddpm", "start": "normal", "n": 100, "seed": 0},
               "timing": {"total_s": 9.0},
               "protocol": {"real": {"split": "test", "count": 2000}, "fid": "torchmetrics FID on pool3",
                            "fd_classifier": "FD of the classifier's 128-d features"}}
    data[0].evals = {"ddpm-normal-n100-seed0-last": result,
                     "cold": {**result, "samples": {**result["samples"], "sampler": "ddpm", "start": "conditional"}}}
    rows = {r[0]: r[1:] for r in M.final_table(data)}
    assert rows["FID"][:2] == ["75", "not measured"]
    assert rows["FID"][2].startswith("n = 100 samples (ddpm, normal start, seed 0, last checkpoint) vs the first "
                                     "2000 test digits: torchmetrics FID on pool3")
    assert rows["Inception Score"][0] == "1.4 ± 0.12"
    # each metric under the one name evaluate.py writes, with the protocol text written under that name
    assert rows["Fréchet distance (classifier features)"][-1].endswith(": FD of the classifier's 128-d features")
    assert rows["real: Classifier IS"][0] == "9.8 ± 0.05"
    assert rows["FID (ddpm, conditional start)"][0] == "75"
    assert rows["real: Classifier-feature floor (real test vs train)"][0] == "2.5"
    assert "KID" in rows and "Classifier IS" in rows
    assert not {"n", "real: floor count", "total s", "metrics s"} & set(rows)


def test_cli_report_and_errors(study, tmp_path, capsys):
    _, runs = study
    assert main(["report", *map(str, runs[:1]), "-o", str(tmp_path / "c"), "--grid-epochs", "1"]) == 0
    assert (tmp_path / "c" / "index.html").is_file()
    (tmp_path / "train.log").write_text("a log next to the runs")
    assert main(["report", str(runs[0]), str(tmp_path / "train.log"), "-o", str(tmp_path / "f")]) == 0
    assert "skipping" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistdiff: error: ") and "is not a run directory" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()
    assert main(["report", str(runs[0]), "-o", str(tmp_path / "e"), "--grid-epochs", "one"]) == 2
    assert json.loads((tmp_path / "c" / report.MARKER).read_text())["made_by"].startswith("mnistdiff")


def test_the_one_metrics_reader_leaves_out_a_half_written_last_line(tmp_path):
    """runs.read_metrics serves training, figures and the report: a run still training may be read
    between a row's first bytes and its newline."""

    (tmp_path / "metrics.jsonl").write_text('{"type": "iter", "epoch": 1, "step": 1, "loss": 0.5}\n'
                                            '{"type": "iter", "st')
    assert rundir.read_metrics(tmp_path) == [{"type": "iter", "epoch": 1, "step": 1, "loss": 0.5}]


def test_the_process_section_carries_one_test_digit_forward_and_back(study, tmp_path, data_dir):
    import shutil

    import numpy as np

    from mnistdiff import data
    from mnistdiff.report import process as P
    from mnistdiff.report.render import Image, Missing

    _, runs = study
    name, (x_t, estimate, reverse), headings = P.rows(runs[2], data_dir)  # cold-row-random
    digit = data.load_split("test", data_dir).images[P.DIGIT].numpy()
    assert name.startswith("cold: row-averaging") and headings[0] == "t=0" and headings[-1] == "t=28"
    assert x_t.shape == estimate.shape == reverse.shape == (P.COLUMNS, 28, 28)
    assert np.array_equal(estimate[0], digit)  # t = 0: the digit itself
    assert np.abs(x_t[0].astype(int) - digit).max() <= 1  # shown contrast-stretched: a digit spans 0..255 already
    assert len({x.tobytes() for x in x_t}) == P.COLUMNS  # each time degrades further
    bare = tmp_path / "no-checkpoints"
    shutil.copytree(runs[0], bare)
    shutil.rmtree(bare / "checkpoints")
    blocks = report.processes(report.collect([runs[0], runs[1], runs[2]]), data_dir)
    assert [type(b) for b in blocks[1:]] == [Image, Image]  # testing2 is ddpm-default's process again
    assert isinstance(report.processes(report.collect([bare]), data_dir)[1], Missing)
