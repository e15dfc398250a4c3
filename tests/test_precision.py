"""--precision auto (issue 15, item 2): bf16 where the hardware computes it natively, fp32 elsewhere,
and the run's config.json records the choice. The CPU is faked through perf.cpu_flags."""

import json
from pathlib import Path

import pytest

from mnistdiff import config as C, perf, training as T

from .conftest import TINY


@pytest.mark.parametrize("flags, device, want", [({"avx2", "fma"}, "cpu", "fp32"),
                                                 ({"avx2", "avx512f", "avx512_bf16"}, "cpu", "bf16"),
                                                 ({"avx2", "amx_bf16", "amx_tile"}, "cpu", "bf16"),
                                                 ({"avx2"}, "cuda", "bf16")])
def test_auto_picks_bf16_only_where_it_is_native(monkeypatch, flags, device, want):
    monkeypatch.setattr(perf, "cpu_flags", lambda: flags)
    precision, why = perf.auto_precision(device)
    assert precision == want and why


def test_a_named_precision_is_kept_and_auto_is_the_default():
    assert C.Config().train.precision == "auto" and C.preset("ddpm-default").train.precision == "auto"
    cfg = C.apply(C.Config(), {"precision": "fp32"})
    assert perf.resolve_precision(cfg) == (cfg, None)
    with pytest.raises(Exception, match="precision"):
        C.validate(C.apply(C.Config(), {"precision": "fp16"}))


def test_this_machine_is_read_from_proc_cpuinfo():
    flags = perf.cpu_flags()
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():  # not Linux: no flags, and auto is fp32
        assert flags == set() and perf.auto_precision("cpu")[0] == "fp32"
        return
    line = next(line for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features")))
    assert flags and flags == set(line.split(":", 1)[1].split()), "cpu_flags() must return the kernel's list"


@pytest.mark.parametrize("flags, want", [({"avx2"}, "fp32"), ({"avx512_bf16"}, "bf16")])
def test_a_run_records_what_auto_chose_and_says_so(monkeypatch, tmp_path, capsys, flags, want):
    monkeypatch.setattr(perf, "cpu_flags", lambda: flags)
    run = tmp_path / "r"
    T.train(C.apply(C.preset("ddpm-default"), dict(TINY, epochs=1, subset=64, sample_epochs=())), run,
            progress=False)
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == want
    assert f"precision auto: {want} (" in capsys.readouterr().err
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start["type"] == "start" and start["precision"] == want
    # a resume keeps the recorded precision whatever the machine says now
    monkeypatch.setattr(perf, "cpu_flags", lambda: {"avx512_bf16"} if want == "fp32" else {"avx2"})
    T.train(C.apply(C.from_dict(json.loads((run / "config.json").read_text())), {"epochs": 2}), run, resume=True,
            progress=False)
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == want
