import contextlib
import functools
import gzip
import http.server
import shutil
import threading

import numpy as np
import pytest
import torch

from mnistdiff import data
from mnistdiff.errors import UserError

from .conftest import cli


def test_real_mnist_matches_its_published_figures(data_dir):
    train = data.load_split("train", data_dir)
    test = data.load_split("test", data_dir)
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 28, 28)
    assert (train.images.float() / 255).mean().item() == pytest.approx(0.1307, abs=1e-4)
    counts = torch.bincount(train.labels, minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_scaling_is_the_seeds():
    x = data.to_model_range(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.shape == (1, 1, 1, 2) and x.min() == -0.5 and x.max() == 0.5
    assert torch.equal(data.to_uint8(x[:, 0]), torch.tensor([[[0, 255]]], dtype=torch.uint8))


def test_subset_is_deterministic_with_the_seed():
    a, b, c = (data.subset_indices(60000, 100, s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c) and len(set(a.tolist())) == 100
    assert torch.equal(data.epoch_permutation(50, 0, 3), data.epoch_permutation(50, 0, 3))


def _copy(data_dir, tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for p in data_dir.iterdir():
        if "idx" in p.name:
            shutil.copy(p, tmp_path / p.name)
    return tmp_path


def _rewrite(path, fn):
    """Damage a file; written uncompressed (the loader reads both) because gzip-ing 47 MB is slow."""
    raw = gzip.decompress(path.read_bytes())
    path.with_suffix("").write_bytes(fn(raw))
    path.unlink()


@pytest.mark.parametrize("damage, expected", [
    (lambda raw: raw[:1000], "truncated"),
    (lambda raw: (1234).to_bytes(4, "big") + raw[4:], "magic number 1234"),
    (lambda raw: raw[:4] + (9999).to_bytes(4, "big") + raw[8:], "holds 9999 items"),
    (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "fails its checksum"),
    (lambda raw: raw[:7], "truncated"),
])
@pytest.mark.parametrize("kind", ["images", "labels"])
def test_bad_idx_files_are_refused_with_a_clear_message(data_dir, tmp_path, damage, expected, kind):
    d = _copy(data_dir, tmp_path)
    _rewrite(d / f"t10k-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz", damage)
    with pytest.raises(UserError, match=expected):
        data.load_split("test", d)


def test_bad_data_through_the_cli_is_one_line_exit_2(data_dir, tmp_path):
    d = _copy(data_dir, tmp_path / "data")
    _rewrite(d / "train-labels-idx1-ubyte.gz", lambda raw: (2051).to_bytes(4, "big") + raw[4:])
    r = cli("train", "--preset", "quick", "--data-dir", d, "--run", tmp_path / "run", "--quiet")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "magic number 2051" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


@contextlib.contextmanager
def serve(directory):
    """A real HTTP server on loopback serving a folder, as a public mirror would."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@pytest.fixture
def local_mirror(data_dir):
    with serve(data_dir) as url:
        yield url


def test_missing_files_are_downloaded_from_the_first_mirror_that_works(tmp_path, local_mirror, monkeypatch):
    # The first mirror refuses connections; the second serves the real files.
    monkeypatch.setenv("MNISTDIFF_MIRRORS", f"http://127.0.0.1:9/,{local_mirror}")
    split = data.load_split("test", tmp_path / "fresh")
    assert len(split) == 10000 and split.sha256 == data.SHA256["t10k-images-idx3-ubyte"]
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_a_mirror_serving_wrong_content_is_rejected(tmp_path, data_dir, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (bad / f"{stem}.gz").write_bytes(gzip.compress(b"not mnist"))
    with serve(bad) as url:
        monkeypatch.setenv("MNISTDIFF_MIRRORS", url)
        with pytest.raises(UserError, match="checksum mismatch"):
            data.load_split("test", tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.gz"))  # nothing unverified is kept


def test_parse_idx_rejects_wrong_dimensions():
    raw = (2051).to_bytes(4, "big") + (1).to_bytes(4, "big") + (27).to_bytes(4, "big") + (28).to_bytes(4, "big")
    with pytest.raises(UserError, match="27x28"):
        data.parse_idx(raw + bytes(27 * 28), magic=2051, count=1)
    ok = data.parse_idx((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3]), magic=2049, count=3)
    assert np.array_equal(ok, [1, 2, 3])
