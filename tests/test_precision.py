"""--precision auto (issue 15, item 2): bf16 where the hardware computes it natively, fp32 elsewhere,
and the run's config.json records the choice. The CPU is faked through machine.cpu_flags."""

import json
from pathlib import Path

import pytest

from mnistdiff import config as C
from mnistdiff.training import loop as T

from .conftest import TINY
from mnistdiff import machine


@pytest.mark.parametrize("flags, device, want", [({"avx2", "fma"}, "cpu", "fp32"),
                                                 ({"avx2", "avx512f", "avx512_bf16"}, "cpu", "bf16"),
                                                 ({"avx2", "amx_bf16", "amx_tile"}, "cpu", "bf16"),
                                                 ({"avx2"}, "cuda", "bf16")])
def test_auto_picks_bf16_only_where_it_is_native(monkeypatch, flags, device, want):
    monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    precision, why = machine.auto_precision(device)
    assert precision == want and why


def test_a_named_precision_is_kept_and_auto_is_the_default():
    assert C.Config().train.precision == "auto" and C.preset("ddpm-default").train.precision == "auto"
    cfg = C.apply(C.Config(), {"precision": "fp32"})
    assert machine.resolve_precision(cfg) == (cfg, None)
    with pytest.raises(Exception, match="precision"):
        C.validate(C.apply(C.Config(), {"precision": "fp16"}))


def test_this_machine_is_read_from_proc_cpuinfo():
    flags = machine.cpu_flags()
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():  # not Linux: no flags, and auto is fp32
        assert flags == set() and machine.auto_precision("cpu")[0] == "fp32"
        return
    line = next(line for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features")))
    assert flags and flags == set(line.split(":", 1)[1].split()), "cpu_flags() must return the kernel's list"


@pytest.mark.parametrize("flags, want", [({"avx2"}, "fp32"), ({"avx512_bf16"}, "bf16")])
def test_a_run_records_what_auto_chose_and_says_so(monkeypatch, tmp_path, capsys, flags, want):
    monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    run = tmp_path / "r"
    T.train(C.apply(C.preset("ddpm-default"), dict(TINY, epochs=1, subset=64, sample_epochs=())), run,
            progress=False)
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == want
    assert f"precision auto: {want} (" in capsys.readouterr().err
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start["type"] == "start" and start["precision"] == want
    # a resume keeps the recorded precision whatever the machine says now
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512_bf16"} if want == "fp32" else {"avx2"})
    T.train(C.apply(C.from_dict(json.loads((run / "config.json").read_text())), {"epochs": 2}), run, resume=True,
            progress=False)
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == want


# -- inference precision -------------------------------------------------------------------------------

def test_auto_samples_in_fp32_until_bf16_is_measured(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(machine, "BF16_SAMPLING_MEASURED", frozenset())
    assert machine.inference_precision("auto", "cnn")[0] == "fp32"
    monkeypatch.setattr(machine, "BF16_SAMPLING_MEASURED", frozenset({"cnn"}))
    assert machine.inference_precision("auto", "cnn")[0] == "bf16"
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2"})
    assert machine.inference_precision("auto", "cnn")[0] == "fp32"  # emulated bf16 never pays
    assert machine.inference_precision("bf16", "unet")[0] == "bf16"


def test_bf16_sampling_is_close_to_fp32_and_recorded(tmp_path, cache):
    import numpy as np

    from mnistdiff.evaluation import evaluate as E
    from mnistdiff.training import loop as Tr

    run = tmp_path / "run"
    Tr.train(C.apply(C.preset("cold-row-random-g4"), dict(subset=64, epochs=1, batch_size=32, hidden=(8,),
                                                          sample_epochs=())), run, progress=False)
    out = {}
    for p in ("fp32", "bf16"):
        path, result = E.evaluate_run(run, n=10, metrics="classifier", n_ref=50, cache=cache, precision=p,
                                      progress=False)
        assert result["samples"]["precision"] == p and path.name.endswith("-bf16.json") == (p == "bf16")
        out[p] = np.load(path.with_suffix(".npy")).astype(int)
    diff = np.abs(out["fp32"] - out["bf16"])
    assert diff.mean() < 8 and (diff > 0).any()  # bf16 rounds, it does not change what is drawn


def test_bf16_with_the_openvino_runtime_is_refused(tmp_path):
    from mnistdiff.evaluation import evaluate as E
    from mnistdiff.errors import UserError

    with pytest.raises(UserError, match="pass --runtime torch or auto"):
        E.check_request(C.preset("cold-row-random"), precision="bf16", runtime="openvino")
