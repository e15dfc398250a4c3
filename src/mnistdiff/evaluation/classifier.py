"""A small MNIST classifier, trained by mnistdiff and cached, for metrics that suit digits.

Inception-v3 was trained on ImageNet photographs; on MNIST its Inception Score sits near 1.7 even
for real digits (the report's Table 3.2). A classifier trained on MNIST itself gives an IS near 10
for real test digits, a Frechet distance on features that know what digits look like, and the class
histogram of generated digits. The seed-0 classifier ships with mnistdiff (assets/, 0.4 MB, made by
scripts/train_classifier.py), so metrics are the same on every machine; another seed is trained once
(about 2 CPU minutes when the machine is idle) and cached as safetensors + JSON, with its test accuracy
and the checksums of the data it saw.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from .. import data
from ..files import atomic_write_bytes
from ..errors import UserError
from ..files import sha256_file

VERSION = "mnist-cnn-v1"  # bump when the architecture or the recipe changes: it names the cache file
MIN_ACCURACY = 0.99
MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel statistics


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


class MnistClassifier(nn.Module):
    """Three conv-BN-ReLU-pool blocks (16, 32, 64 channels) -> 128-d features -> 10 logits."""

    num_features = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*_block(1, 16), *_block(16, 32), *_block(32, 64), nn.Flatten(),
                                  nn.Linear(64 * 3 * 3, self.num_features), nn.ReLU())
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(self.num_features, 10)

    @staticmethod
    def normalize(images_u8: torch.Tensor) -> torch.Tensor:
        return (images_u8.unsqueeze(1).float() / 255.0 - MEAN) / STD

    def embed(self, images_u8: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128) of uint8 digits (N, 28, 28)."""
        return self.body(self.normalize(images_u8))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))

    def forward(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(images_u8))


def accuracy(net: MnistClassifier, split: data.Split, batch_size: int = 1000) -> float:
    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(split.images[i:i + batch_size]).argmax(1) for i in range(0, len(split), batch_size)])
    return float((pred == split.labels).float().mean())


def train_classifier(data_dir=None, *, epochs: int = 2, batch_size: int = 128, max_lr: float = 4e-3,
                     seed: int = 0, subset: int = 0, progress: bool = True) -> tuple[MnistClassifier, dict]:
    """Adam with a one-cycle learning rate over `epochs` passes; -> (net in eval mode, record)."""
    train, test = data.load_split("train", data_dir), data.load_split("test", data_dir)
    idx = data.subset_indices(len(train), subset, seed)
    images, labels = train.images[idx], train.labels[idx]
    n = images.shape[0]
    steps = epochs * -(-n // batch_size)
    t0 = time.perf_counter()
    # A private RNG stream: training the classifier inside a diffusion run must not move the run's RNG.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = MnistClassifier()
        opt = torch.optim.Adam(net.parameters(), lr=max_lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)
        g = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, batch_size):
                j = perm[i:i + batch_size]
                loss = F.cross_entropy(net(images[j]), labels[j])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if progress:
                print(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    acc = accuracy(net, test)
    record = {"version": VERSION, "test_accuracy": acc, "epochs": epochs, "batch_size": batch_size,
              "max_lr": max_lr, "seed": seed, "n_train": n, "train_seconds": round(time.perf_counter() - t0, 1),
              "train_sha256": train.sha256, "test_sha256": test.sha256}
    if progress:
        print(f"classifier: test accuracy {acc:.4f} after {record['train_seconds']} s", file=sys.stderr)
    return net, record


def _files(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    stem = Path(folder) / f"{VERSION}-seed{seed}"
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def cache_paths(cache_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """(weights, record) of the classifier kept in a cache folder."""
    return _files(Path(cache_dir) / "classifier", seed)


def save_classifier(net: MnistClassifier, record: dict, cache_dir: Path, seed: int = 0, *,
                    folder: Path | None = None) -> None:
    """Into the cache folder, or into `folder` itself (scripts/train_classifier.py's shipped copy)."""
    weights, meta = _files(folder, seed) if folder is not None else cache_paths(cache_dir, seed)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(weights, save(state, metadata={"version": VERSION}))
    record = {**record, "weights_sha256": sha256_file(weights)}
    atomic_write_bytes(meta, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def load_cached(cache_dir: Path, data_dir=None, seed: int = 0) -> tuple[MnistClassifier, dict] | None:
    """The cached classifier, or None when absent or made from other data or other weights."""
    from ..files import cache_entry

    weights, meta = cache_paths(cache_dir, seed)
    if not (cache_entry(weights) and cache_entry(meta)):
        return None
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    train, test = data.load_split("train", data_dir), data.load_split("test", data_dir)
    if (record.get("version"), record.get("train_sha256"), record.get("test_sha256")) != \
            (VERSION, train.sha256, test.sha256) or record.get("weights_sha256") != sha256_file(weights):
        return None
    net = MnistClassifier()
    net.load_state_dict(load_file(str(weights)))
    return net.eval(), record


SHIPPED = Path(__file__).parents[1] / "assets"  # the seed-0 classifier, trained by scripts/train_classifier.py


def load_shipped(data_dir=None) -> tuple[MnistClassifier, dict] | None:
    """The classifier shipped with mnistdiff (seed 0), or None when its files are absent, altered (SHA-256) or
    were trained on other MNIST files than data_dir's."""
    weights, meta = _files(SHIPPED)
    if not (weights.is_file() and meta.is_file()):
        return None
    record = json.loads(meta.read_text())
    if record.get("version") != VERSION or record.get("weights_sha256") != sha256_file(weights):
        return None
    if (record.get("train_sha256"), record.get("test_sha256")) != \
            (data.load_split("train", data_dir).sha256, data.load_split("test", data_dir).sha256):
        return None
    net = MnistClassifier()
    net.load_state_dict(load_file(str(weights)))
    return net.eval(), {**record, "shipped": True}


def load_or_train(cache_dir: Path, data_dir=None, *, seed: int = 0, progress: bool = True):
    """(classifier in eval mode, record): the shipped one (seed 0), else from the cache, else trained now and
    cached."""
    shipped = load_shipped(data_dir) if seed == 0 else None
    if shipped is not None:
        return shipped
    cached = load_cached(cache_dir, data_dir, seed)
    if cached is not None:
        return cached
    if progress:
        print(f"training the MNIST classifier once (cached in {Path(cache_dir) / 'classifier'})", file=sys.stderr)
    net, record = train_classifier(data_dir, seed=seed, progress=progress)
    if record["test_accuracy"] < MIN_ACCURACY:
        raise UserError(f"the MNIST classifier reached only {record['test_accuracy']:.4f} test accuracy "
                        f"(< {MIN_ACCURACY}); its metrics would mislead. Report this as a bug.")
    try:
        save_classifier(net, record, cache_dir, seed)
    except OSError as e:
        raise UserError(f"cannot write the classifier cache in {cache_dir} ({e.strerror}); "
                        "pass a writable --cache-dir or set MNISTDIFF_CACHE") from None
    return net, load_cached(cache_dir, data_dir, seed)[1]
