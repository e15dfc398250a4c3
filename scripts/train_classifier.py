"""Train the MNIST classifier of the metrics and write it where mnistdiff ships it.

    MNISTDIFF_DATA=../shared/data/mnist python scripts/train_classifier.py [--out src/mnistdiff/assets]

Seed 0, the recipe of mnistdiff.classifier.train_classifier (two epochs of Adam, one-cycle learning rate),
refused below classifier.MIN_ACCURACY test accuracy. Writes <VERSION>-seed0.safetensors and its record
(test accuracy, the SHA-256 of the weights and of the MNIST files it saw). --subset trains on fewer digits
(for a quick check; such a classifier is not for shipping).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnistdiff.evaluation import classifier as CL
from mnistdiff.errors import UserError, run_script


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(CL.SHIPPED), help="folder (default: the package's assets/)")
    p.add_argument("--subset", type=int, default=0, help="train on this many digits (default: all 60,000)")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNISTDIFF_DATA)")
    args = p.parse_args()
    net, record = CL.train_classifier(args.data_dir, seed=0, subset=args.subset)
    if record["test_accuracy"] < CL.MIN_ACCURACY and not args.subset:
        raise UserError(f"test accuracy {record['test_accuracy']:.4f} is below {CL.MIN_ACCURACY}; not written")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    CL.save_classifier(net, record, None, folder=Path(args.out))
    print(f"wrote {Path(args.out)} (test accuracy {record['test_accuracy']:.4f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_script(main)
