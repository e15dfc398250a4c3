"""benchmarks/run.py and benchmarks/ddim_steps.py end to end at tiny sizes: every comparison runs
against its real peer (diffusers, the starter-code loop, the naive Inception loop) and the tables
are written. No speed is asserted here; the speeds are what running the benchmarks for real records."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from mnistdiff import config as C
from mnistdiff.training import loop as T

from .conftest import ROOT, TINY
from mnistdiff import machine


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_BENCH = ["--train-steps", "2", "--lever-steps", "1", "--lever-rounds", "1", "--sample-n", "1",
              "--eval-n", "2", "--fp32-size", "64", "--bf16-size", "32", "--batch-size", "8", "--runtime-n", "2",
              "--guided-n", "3", "--runtime-eval-n", "2", "--runtime-rounds", "1"]


@pytest.mark.slow  # two tiny training loops, 2 x 1000 sampling steps of one image, 2 Inception images: ~40 s
def test_benchmark_runs_every_comparison_and_rewrites_the_readme_table(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    run = _bench("run")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{run.README_START}\nold table\n{run.README_END}\n\nafter\n")
    model = tmp_path / "model"
    T.train(C.apply(C.preset("ddpm-default"), {**TINY, "epochs": 1, "sample_epochs": ()}), model, progress=False)
    assert run.main([*TINY_BENCH, "--out", str(tmp_path / "out"), "--readme", str(readme), "--evaluate", str(model),
                     "--evaluate-n", "10", "--evaluate-ref", "10", "--evaluate-steps", "5"]) == 0

    res = json.loads((tmp_path / "out/results.json").read_text())
    tr, sa, ev, rf = res["training"], res["sampling"], res["evaluation"], res["roofline"]
    assert (tr["steps"], tr["batch_size"], sa["n"], sa["T"], ev["n"]) == (2, 8, 1, 1000, 2)
    assert tr["precision"] == machine.auto_precision("cpu")[0]  # the preset's auto, resolved for this CPU
    for ratio in (tr["ratio"], sa["ratio"], ev["ratio"], rf["fraction_fp32"], rf["fraction_bf16"]):
        assert math.isfinite(ratio) and ratio > 0
    assert math.isfinite(tr["ours_loss_tail"]) and math.isfinite(tr["ref_loss_tail"])
    # The cross-checks the ratios rest on: the same images from both samplers, the same features.
    assert sa["max_abs_diff"] < 1e-2 and sa["same_uint8_pixels"] > 0.99
    assert ev["feature_rel_diff"] < 1e-4
    rt = res["runtime"]
    assert rt["inception"]["runtime"] == "openvino" and rt["inception"]["feature_rel_diff"] < 1e-5
    for name in ("unet", "cnn"):
        assert rt[name]["runtime"] == "openvino" and rt[name]["same_uint8_pixels"] >= 0.999
        assert math.isfinite(rt[name]["ratio"]) and rt[name]["ratio"] > 0
    guided = rt["guided"]  # the net in chunks of rows against the whole batch: the same images
    assert (guided["n"], guided["rows"]) == (6, run.NET_ROWS) and guided["same_uint8_pixels"] >= 0.999
    assert rf["flops_per_image"] > 1e8  # the seed CNN's 7x7 convs at 28x28: hundreds of MFLOP an image
    levers = [lv["lever"] for lv in res["levers"]]
    assert levers[0].startswith("torch defaults") and {"adam=foreach", "channels_last", "precision=bf16"} <= set(levers)
    assert res["machine"]["cores"] >= 1 and "avx512_bf16" in res["machine"]
    unet = {lv["lever"]: lv for lv in res["unet_levers"]}
    assert {"channels_last", "batch 2", "batch 4", "batch 16"} <= set(unet) and unet["batch 16"]["batch_size"] == 16
    assert any(label.startswith("precision=auto (") for label in unet)  # names what auto chose here
    assert res["unet_roofline"]["flops_per_image"] > 1e8 and 0 < res["unet_roofline"]["fraction_fp32"]

    md = (tmp_path / "out/results.md").read_text()
    assert f"| training, images/s (batch 8, 2 steps each; ours in {tr['precision']}" in md and "diffusers DDPMScheduler loop" in md
    assert "| Inception features, images/s (2 images, batch 64, after one untimed batch)" in md and "--runtime openvino" in md
    assert "Runtime roofline (fp32, nominal FLOPs): Inception-v3 costs 11.42 GFLOP per image" in md
    assert rt["unet"]["flops_per_image"] == pytest.approx(19 * 79.6e6, rel=0.01)  # Heun-10: 19 calls of the UNet
    assert "The quality UNet (ddpm-unet" in md and "| batch 16 |" in md and "guided sampling, ddim-5" in md
    ev_row = res["evaluate"]  # the end-to-end evaluation, whose result is the run's own eval file
    assert ev_row["n"] == 10 and json.loads(Path(ev_row["file"]).read_text())["fid"] == ev_row["fid"]
    assert f"mnistdiff evaluate {model} -n 10` end to end (vs 10 test digits, ddim, steps 5, clip True, --runtime auto)" in md
    assert json.loads(Path(ev_row["file"]).read_text())["samples"]["sampler_options"]["steps"] == 5
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("\n\nafter\n")
    block = text.split(run.README_START)[1].split(run.README_END)[0]
    assert block.strip() == md.removeprefix("# Performance\n\n").strip() and res["machine"]["date"] in block


def test_benchmark_refuses_bad_arguments_before_measuring(tmp_path, capsys):
    out = tmp_path / "out"
    assert _bench("run").main([*TINY_BENCH, "--out", str(out), "--readme", str(tmp_path / "nope.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.md does not exist" in err and "--no-readme" in err
    assert _bench("run").main([*TINY_BENCH, "--eval-n", "1", "--out", str(out), "--no-readme"]) == 2
    assert "--eval-n >= 2" in capsys.readouterr().err
    assert _bench("run").main([*TINY_BENCH, "--evaluate", str(tmp_path), "--out", str(out), "--no-readme"]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert _bench("run").main([*TINY_BENCH, "--evaluate-sampler", "nope", "--out", str(out), "--no-readme"]) == 2
    assert "--evaluate-sampler nope is not a sampler" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow  # a tiny training and Inception features of 24 images: ~20 s
def test_ddim_steps_table_has_a_row_per_step_count_and_the_ddpm_reference(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    ddim = _bench("ddim_steps")
    cold = C.apply(C.preset("cold-row-random"), {**TINY, "T": 28, "epochs": 1})
    T.train(cold, tmp_path / "cold", progress=False)
    assert ddim.main([str(tmp_path / "cold"), "--out", str(tmp_path / "x")]) == 2
    assert ddim.main([str(tmp_path / "cold"), "--steps", "10,zero", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

    run = tmp_path / "ddpm"
    T.train(C.apply(C.preset("ddpm-default"), {**TINY, "epochs": 1}), run, progress=False)
    # --runtime torch: auto would time Inception in both runtimes first (a minute here); tests/test_runtime covers it
    assert ddim.main([str(run), "-n", "8", "--n-ref", "8", "--steps", "2,5", "--runtime", "torch",
                      "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out/ddim_steps.json").read_text())["rows"]
    assert [(r["sampler"], r["net_calls"]) for r in rows] == [("ddim", 2), ("ddim", 5), ("ddpm", 20)]
    assert all(math.isfinite(r["fid"]) and r["images_per_s"] > 0 for r in rows)
    md = (tmp_path / "out/ddim_steps.md").read_text()
    assert "| ddim | 2 | 0.0 | no |" in md and "| ddpm | 20 | - | no |" in md and "8 samples per row" in md
    # DPM-Solver++(2M) beside DDIM at the same net calls, clipped, into another file
    assert ddim.main([str(run), "-n", "8", "--n-ref", "8", "--steps", "3", "--samplers", "ddim,dpm++2m", "--clip",
                      "--no-ddpm", "--name", "solver_steps", "--runtime", "torch", "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out/solver_steps.json").read_text())["rows"]
    assert [(r["sampler"], r["net_calls"], r["clip"]) for r in rows] == [("ddim", 3, True), ("dpm++2m", 3, True)]
    assert "| dpm++2m | 3 | - | yes |" in (tmp_path / "out/solver_steps.md").read_text()
    assert ddim.main([str(run), "--samplers", "heun", "--out", str(tmp_path / "x")]) == 2  # heun: EDM runs only


def test_fft_convolution_benchmark_computes_the_direct_convolution(tmp_path):
    fft = _bench("fft_conv")
    assert fft.main(["--batch", "2", "--repeats", "1", "--widths", "1,3,2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "fft_conv.json").read_text())["rows"]
    assert [(r["c_in"], r["c_out"]) for r in rows] == [(1, 3), (3, 2)]
    assert all(r["max_rel_err"] < 1e-4 and r["direct_ms"] > 0 and r["fft_ms"] > 0 for r in rows)
    assert "| 3 -> 2 |" in (tmp_path / "fft_conv.md").read_text()


@pytest.mark.slow  # tiny sampling batches and two Inception images, each three ways: ~30 s
def test_runtime_streams_table_times_one_stream_streams_and_torch(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("MNISTDIFF_CACHE", str(cache))
    streams = _bench("runtime_streams")
    assert streams.main(["--rounds", "1", "--batch", "2", "--inception-batch", "2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "runtime_streams.json").read_text())["rows"]
    assert [r["what"] for r in rows] == ["quick-unet sampling, heun-10", "ddpm-default sampling, ddim-20",
                                         "Inception-v3 features"]
    for r in rows:
        assert set(r["median_images_per_s"]) == {"one stream", "streams", "torch"}
        assert math.isfinite(r["streams_vs_one"]) and r["streams_vs_one"] > 0
    assert "| quick-unet sampling, heun-10 | 2 |" in (tmp_path / "runtime_streams.md").read_text()
    assert streams.main(["--batch", "x", "--out", str(tmp_path / "no")]) == 2
    assert "--batch 64,128" in capsys.readouterr().err and not (tmp_path / "no").exists()
