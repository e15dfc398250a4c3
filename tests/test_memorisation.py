"""The memorisation check: copies of training digits are found, new drawings are not."""

import json

import pytest
import torch

from mnistdiff import data
from mnistdiff.evaluation import memorisation as MEM

from .conftest import main


@pytest.fixture(scope="module")
def splits(data_dir):
    return data.load_split("train", data_dir).images[:3000], data.load_split("test", data_dir).images[:1000]


def test_copies_are_counted_and_new_digits_are_not(splits):
    train, test = splits
    copies = train[:20]
    new = data.load_split("test", None).images[5000:5020]  # held-out digits: drawings the training set lacks
    r = MEM.measure(torch.cat([copies, new]), train, test)
    assert r["pixel"]["copies"] >= 20 and r["pixel"]["copy_rate"] == pytest.approx(r["pixel"]["copies"] / 40)
    assert r["pixel"]["sample_nearest_p5"] == pytest.approx(0.0, abs=1e-3)  # exact copies: distance 0
    assert [p[1] for p in r["closest_pairs"]][:1][0] < 20 and len(r["closest_pairs"]) == MEM.CLOSEST
    only_new = MEM.measure(new, train, test)
    assert only_new["pixel"]["copies"] <= 3  # new drawings: about 1% (of 20 here, a couple at most)
    assert only_new["pixel"]["sample_nearest_median"] == pytest.approx(r["pixel"]["test_nearest_median"], rel=0.5)


def test_nearest_is_exact():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(50, 7, generator=g), torch.randn(300, 7, generator=g)
    d, i = MEM.nearest(q, k, chunk=16)
    brute = torch.cdist(q.double(), k.double())
    assert torch.equal(i, brute.argmin(1)) and torch.allclose(d.double(), brute.min(1).values, atol=1e-5)
    d0, i0 = MEM.nearest(k[:5], k)
    assert torch.equal(i0, torch.arange(5)) and torch.equal(d0, torch.zeros(5))  # a copy is at distance 0


@pytest.mark.slow  # the 10,000 test digits against the 60,000 training digits: ~30 s on a shared core
def test_evaluate_reports_the_copy_rate_and_draws_the_closest_pairs(tmp_path, cache):
    run = tmp_path / "run"
    assert main("train", "--preset", "cold-row-random-g4", "--run", run, "--subset", "64", "--epochs", "1",
                "--batch-size", "32", "--hidden", "8", "--sample-epochs", "", "--quiet").returncode == 0
    r = main("evaluate", run, "-n", "20", "--metrics", "classifier", "--n-ref", "50", "--cache-dir", cache,
             "--memorisation", "--name", "mem", "--quiet")
    assert r.returncode == 0, r.stderr
    res = json.loads((run / "eval" / "mem.json").read_text())
    assert set(res["memorisation"]) >= {"pixel", "classifier", "closest_pairs", "protocol"}
    assert "copy rate (pixel space" in r.stdout and (run / "eval" / "mem-closest.png").is_file()
