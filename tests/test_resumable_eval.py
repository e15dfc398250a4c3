"""An evaluation interrupted while it samples starts again at its first missing batch, with the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnistdiff import config as C
from mnistdiff.errors import UserError
from mnistdiff.evaluation import evaluate as E
from mnistdiff.sampling import samplers

from .conftest import TINY, main

N, BATCH = 30, 8  # four batches, the last one short


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from mnistdiff.training import loop as Tr

    run = tmp_path_factory.mktemp("resumable") / "run"
    Tr.train(C.apply(C.preset("ddpm-default"), {**TINY, "sample_epochs": ()}), run, progress=False)
    return run


def _evaluate(run, cache, name, **kw):
    return E.evaluate_run(run, n=N, sample_batch_size=BATCH, metrics="classifier", n_ref=50, cache=cache,
                          progress=False, name=name, **kw)


class _Interrupted:
    """The ddpm sampler, with Ctrl-C in the middle of its call number `calls` (counting from 0)."""

    def __init__(self, sampler, calls: int):
        self.sampler, self.calls, self.made = sampler, calls, 0

    def __getattr__(self, name):  # what the sampler declares (the processes it serves...)
        return getattr(self.sampler, name)

    def __call__(self, *args, **kw):
        if self.made == self.calls:
            raise KeyboardInterrupt
        self.made += 1
        return self.sampler(*args, **kw)


def _interrupt_after(monkeypatch, calls: int):
    monkeypatch.setitem(samplers.SAMPLERS, "ddpm", _Interrupted(samplers.SAMPLERS["ddpm"], calls))


def test_an_interrupted_evaluation_resumes_with_the_images_of_an_uninterrupted_one(run, cache, monkeypatch):
    whole_json, whole = _evaluate(run, cache, "whole")
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _evaluate(run, cache, "cut")
    kept = run / "eval" / "cut.partial"
    assert sorted(p.name for p in kept.glob("batch-*.npy")) == ["batch-0000.npy", "batch-0000.rng.npy",
                                                                "batch-0001.npy", "batch-0001.rng.npy"]
    assert not (run / "eval" / "cut.json").exists()
    monkeypatch.undo()
    out, resumed = _evaluate(run, cache, "cut")
    assert np.array_equal(np.load(out.with_suffix(".npy")), np.load(whole_json.with_suffix(".npy")))
    assert resumed["classifier_is"] == whole["classifier_is"]
    assert resumed["samples"]["resumed_batches"] == 2 and "resumed_batches" not in whole["samples"]
    assert not kept.exists()  # the result is written: the batches are no longer needed


def test_saved_batches_of_another_request_are_refused_and_kept(run, cache, monkeypatch):
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _evaluate(run, cache, "other")
    monkeypatch.undo()
    kept = run / "eval" / "other.partial"
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    with pytest.raises(UserError, match="another request .*batch_size"):
        E.evaluate_run(run, n=N, sample_batch_size=BATCH + 1, metrics="classifier", n_ref=50, cache=cache,
                       progress=False, name="other")
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before
    np.save(kept / "batch-0000.rng.npy", np.zeros(7, np.uint8))  # a state of the wrong size
    with pytest.raises(UserError, match="batch-0000.npy is damaged"):
        _evaluate(run, cache, "other")
    (kept / "batch-0000.npy").write_bytes(b"not an array")
    with pytest.raises(UserError, match="batch-0000.npy is damaged"):
        _evaluate(run, cache, "other")
    (kept / "request.json").write_text("{")
    with pytest.raises(UserError, match="request.json is unreadable"):
        _evaluate(run, cache, "other")


def test_one_batch_keeps_nothing_on_disk(run, cache, monkeypatch):
    _interrupt_after(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        E.evaluate_run(run, n=N, sample_batch_size=N, metrics="classifier", n_ref=50, cache=cache,
                       progress=False, name="single")
    assert not (run / "eval" / "single.partial").exists()


def test_the_cli_resumes_and_says_so(run, cache, monkeypatch):
    _interrupt_after(monkeypatch, 3)
    args = ["evaluate", run, "-n", N, "--sample-batch-size", BATCH, "--metrics", "classifier", "--n-ref", 50,
            "--cache-dir", cache, "--name", "cli"]
    r = main(*args)
    assert r.returncode == 130 and "an evaluation with the same command again" in r.stderr
    monkeypatch.undo()
    r = main(*args)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {3 * BATCH} of {N} images were sampled before" in r.stderr
    assert f"sampled {N - 3 * BATCH} images" in r.stderr
    drawn = json.loads((run / "eval" / "cli.json").read_text())["samples"]["drawn"]
    assert [d["batches"] for d in drawn] == [4] and drawn[0]["precision"] == "fp32"  # one CPU, one precision
    r = main("evaluate", run, "--snapshots", "--sample-batch-size", 10)
    assert r.returncode == 2 and "--sample-batch-size does not apply" in r.stderr


def test_a_set_begun_in_fp32_may_be_finished_in_bf16_and_says_so(run, cache, monkeypatch):
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _evaluate(run, cache, "mixed")
    monkeypatch.undo()
    out, result = _evaluate(run, cache, "mixed", precision="bf16")
    assert result["samples"]["precision"] == "fp32+bf16"
    assert [(d["precision"], d["batches"]) for d in result["samples"]["drawn"]] == [("fp32", 1), ("bf16", 3)]
