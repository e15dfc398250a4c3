"""scripts/speckle.py, quality_ablation.py and background_probe.py at tiny sizes (no quality number is asserted)."""

import importlib.util
import json
import subprocess
import sys

import pytest

from mnistdiff import config as C
from mnistdiff.errors import UserError

from .conftest import ROOT, cli, tiny_flags


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_speckle_tables_ddpm_and_edm_runs_and_refuses_a_cold_one(tmp_path, capsys):
    ddpm, edm, cold = tmp_path / "ddpm", tmp_path / "edm", tmp_path / "cold"
    assert cli("train", "--run", ddpm, *tiny_flags()).returncode == 0
    assert cli("train", "--run", edm, *tiny_flags(), "--degradation", "edm", "--prediction", "x0").returncode == 0
    speckle = _script("speckle")
    out = tmp_path / "fig" / "speckle.png"
    assert speckle.main([str(ddpm), str(edm), "--out", str(out)]) == 0
    table = json.loads(out.with_suffix(".json").read_text())
    for run in (ddpm, edm):
        rows = table[str(run)]
        assert [r["sigma"] for r in rows] == list(speckle.SIGMAS)
        assert all(r["background_rms"] >= 0 and r["ink_rms"] > 0 for r in rows)
    # an edm run is asked at exactly each sigma; a DDPM run at its nearest timestep's
    assert [r["sigma_used"] for r in table[str(edm)]] == list(speckle.SIGMAS)
    assert out.is_file() and "| " in capsys.readouterr().out
    assert cli("train", "--run", cold, *tiny_flags(), "--preset", "cold-row-random", "--T", "28").returncode == 0
    with pytest.raises(UserError, match="cold run"):  # the script's __main__ turns it into exit 2
        speckle.main([str(cold)])


def test_quality_ablation_lists_rows_and_refuses_unknown_ones(capsys):
    ablation = _script("quality_ablation")
    assert ablation.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(row[0] in listed for row in ablation.ROWS)
    assert ablation.main(["--only", "no-such-row"]) == 2
    assert "unknown row 'no-such-row'" in capsys.readouterr().err
    # every row's training config is valid and the baseline is the DDPM the ablation compares against
    for name in ablation.TRAINS:
        ablation.train_config(name)
    assert ablation.train_config("ddpm").process.degradation == "gaussian"
    # the precision A/B is the ddpm-unet preset for one epoch, in fp32 and in bf16, and differs in nothing else
    for precision in ("fp32", "bf16"):
        one_epoch = {"epochs": 1, "sample_epochs": (), "threads": 1, "precision": precision}
        assert ablation.train_config(f"ddpm-unet-{precision}") == C.apply(C.preset("ddpm-unet"), one_epoch)


@pytest.mark.slow  # two tiny trainings, 20 samples and their Inception features
def test_quality_ablation_measures_a_conditional_row_on_the_digits_it_names(tmp_path, cache, monkeypatch):
    from mnistdiff.evaluation.evaluator import Evaluator

    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    ablation = _script("quality_ablation")
    cond, plain = tmp_path / "cond", tmp_path / "plain"
    assert cli("train", "--run", cond, *tiny_flags(), "--conditional").returncode == 0
    assert cli("train", "--run", plain, *tiny_flags()).returncode == 0
    row = ("r", "ddpm-v-cosine-cond", "what", "ddim", {"steps": 3, "digit": ablation.BALANCED, "guidance": 0.5}, "ema")
    evaluator = Evaluator(metrics="all", n_ref=10, cache=cache)
    measured = ablation.measure(row, cond, 20, evaluator, None, "torch")
    assert measured["n"] == 20 and measured["sampler_options"] == row[4] and measured["kid"] == measured["kid"]
    assert (cond / "eval" / "ablation-r-n20.npy").is_file()
    with pytest.raises(UserError, match="digit"):  # the digits reach the sampler: refused for an unconditional run
        ablation.measure(row, plain, 20, evaluator, None, "torch")
    table = ablation.markdown([measured], {"cpu": "x", "cpu_count": 2, "torch": "t"}, 20)
    assert "digit=0..9, guidance=0.5" in table and f"| {measured['cpu']}, {measured['precision']} |" in table


@pytest.mark.slow  # a tiny conditional EDM training and 4 x 20 samples
def test_background_probe_tables_guidance_churn_and_steps(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    edm, ddpm = tmp_path / "edm", tmp_path / "ddpm"
    assert cli("train", "--run", edm, *tiny_flags(), "--degradation", "edm", "--prediction", "x0",
               "--conditional").returncode == 0
    probe = _script("background_probe")
    out = tmp_path / "probe.md"
    assert probe.main([str(edm), "-n", "20", "--digit", "0,1,2,3,4,5,6,7,8,9", "--guidance", "0", "1",
                       "--churn", "0", "5", "--steps", "3", "--out", str(out)]) == 0
    lines = [line for line in out.read_text().splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[:3] for line in lines] == [["| 0", "0", "3"], ["| 0", "5", "3"], ["| 1", "0", "3"],
                                                         ["| 1", "5", "3"]]
    rows = probe.probe(edm, 20, "0,1,2,3,4,5,6,7,8,9", [1.0], [0.0, 5.0], [3])
    assert rows[0]["background"] != rows[1]["background"] or rows[0]["lit_share"] != rows[1]["lit_share"]  # churn acts
    assert all(0 <= r["lit_share"] <= 1 and r["classifier_is"] >= 1 for r in rows)
    assert cli("train", "--run", ddpm, *tiny_flags()).returncode == 0
    with pytest.raises(UserError, match="not an EDM run"):
        probe.main([str(ddpm), "-n", "20"])
    with pytest.raises(UserError, match="-n 5 must be >= 10"):
        probe.main([str(edm), "-n", "5"])


@pytest.mark.slow  # a tiny cold training, 2 x 20 samples and their Inception features
def test_cold_starts_tables_one_row_per_start(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    run = tmp_path / "cold-row-unet"
    assert cli("train", "--run", run, *tiny_flags(), "--preset", "cold-row-random", "--T", "28").returncode == 0
    starts = _script("cold_starts")
    out = tmp_path / "res"
    assert starts.main([str(run), "-n", "20", "--components", "2", "3", "--noise", "0.05", "--runtime", "torch",
                        "--out", str(out)]) == 0
    rows = json.loads((out / "cold-starts.json").read_text())["rows"]
    assert [(r["components"], r["noise"], r["n"]) for r in rows] == [(2, 0.05, 20), (3, 0.05, 20)]
    assert rows[0]["kid"] != rows[1]["kid"]  # each row draws from its own mixture
    table = (out / "cold-starts.md").read_text()
    assert "| 2 | 0.05 |" in table and "| 3 | 0.05 |" in table
    assert sorted(p.name for p in (run / "eval").glob("quality-*.npy")) == [
        "quality-default-components2-noise0.05-n20-seed0.npy", "quality-default-components3-noise0.05-n20-seed0.npy"]
    with pytest.raises(UserError, match="--components >= 1"):
        starts.main([str(run), "--components", "0"])


def test_precision_agreement_measures_both_and_says_whether_bf16_passes(tmp_path, cache):
    from mnistdiff.training import loop as Tr

    run = tmp_path / "tiny"
    Tr.train(C.apply(C.preset("cold-row-random-g4"), dict(subset=64, epochs=1, batch_size=32, hidden=(8,),
                                                          sample_epochs=())), run, progress=False)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "precision_agreement.py"), str(run), "-n", "20",
                        "--metrics", "classifier", "--n-ref", "50", "--cache-dir", str(cache), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "out" / "precision-tiny.json").read_text())
    m = out["verdict"]["metrics"]["classifier_is"]
    assert m["within"] == (abs(m["bf16"] - m["fp32"]) <= m["noise"]) and set(out["sampling_s"]) == {"fp32", "bf16"}
    assert "| classifier_is |" in (tmp_path / "out" / "precision-tiny.md").read_text()
