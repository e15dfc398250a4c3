"""Is a model copying MNIST? Each generated digit's nearest training digit, against held-out test digits.

For every sample, the L2 distance to its nearest training digit, in pixel space and in the MNIST classifier's
feature space; the same for the held-out test digits, which the model never saw, as the baseline a model that
generalises should match. The copy rate is the share of samples nearer the training set than 99% of the test
digits are (below the 1st percentile of their nearest-training distances): new drawings of digits score about
1%, so a higher share is samples that sit on training digits. (Asking instead whether a sample is nearer its
nearest training digit than any test digit is to that digit flags most new digits too: the nearest training
digit is chosen for being close to the sample, not to the test digits.)
"""

from __future__ import annotations

import torch

CLOSEST = 10  # pairs shown in the figure


def nearest(queries: torch.Tensor, keys: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query's nearest key, L2, in chunks so 10,000 x 60,000 fits in memory. The
    search runs in fp32 matmuls; the winner's distance is then computed exactly (an exact copy is 0)."""
    queries, keys = queries.float(), keys.float()
    key_sq = (keys * keys).sum(1)
    index = torch.cat([((q * q).sum(1, keepdim=True) - 2 * q @ keys.T + key_sq).argmin(1)
                       for q in queries.split(chunk)])
    dist = (queries.double() - keys[index].double()).norm(dim=1)
    return dist.float(), index


COPY_QUANTILE = 0.01  # a copy: nearer the training set than 99% of the held-out test digits are


def _space(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
    d_sample, i_sample = nearest(samples, train)
    d_test, _ = nearest(test, train)
    q = torch.tensor([COPY_QUANTILE, 0.05, 0.5])
    threshold, t5, t50 = torch.quantile(d_test, q).tolist()
    s5, s50 = torch.quantile(d_sample, q[1:]).tolist()
    copies = d_sample < threshold
    row = {"sample_nearest_median": s50, "sample_nearest_p5": s5, "test_nearest_median": t50, "test_nearest_p5": t5,
           "copy_threshold": threshold, "copy_rate": copies.float().mean().item(), "copies": int(copies.sum()),
           "copy_rate_of_new_digits": COPY_QUANTILE}
    return row, d_sample, i_sample


def measure(samples_u8: torch.Tensor, train_u8: torch.Tensor, test_u8: torch.Tensor, embed=None) -> dict:
    """The memorisation rows (pixel space, and classifier features when `embed` maps uint8 digits to features),
    plus the CLOSEST closest pairs (sample index, training index) in pixel space."""
    flat = lambda x: x.reshape(len(x), -1).float() / 255.0  # noqa: E731
    pixel, d, i = _space(flat(samples_u8), flat(train_u8), flat(test_u8))
    order = d.argsort()[:CLOSEST]
    out = {"pixel": pixel, "closest_pairs": [[int(k), int(i[k]), float(d[k])] for k in order],
           "protocol": "L2 distance to the nearest training digit (pixels scaled to [0, 1], or the classifier's "
                       "128-d features); baseline: the same for the test digits; copy: a sample nearer the "
                       "training set than 99% of the test digits are (new drawings: about 1%)"}
    if embed is not None:
        with torch.inference_mode():
            feats = [torch.cat([embed(x[j:j + 1000]) for j in range(0, len(x), 1000)])
                     for x in (samples_u8, train_u8, test_u8)]
        out["classifier"] = _space(*feats)[0]
    return out


def pairs_grid(samples_u8: torch.Tensor, train_u8: torch.Tensor, result: dict) -> torch.Tensor:
    """The closest pairs as one uint8 image batch: the samples in the first row, their training digits below."""
    pairs = result["closest_pairs"]
    return torch.cat([samples_u8[[p[0] for p in pairs]], train_u8[[p[1] for p in pairs]]])
