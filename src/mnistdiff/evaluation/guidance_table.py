"""The guidance table of a conditional run as stored in it: RUN/guidance.json and the grids
RUN/figures/guidance-w<w>.png (written by guidance_sweep.measure), read by the report and by
scripts/conditional_results.py. Reading needs no torch model, so the report imports only this.
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
FILE = "guidance.json"


def grid_path(run: Path, w: float) -> Path:
    return Path(run) / "figures" / f"guidance-w{w:g}.png"


def read(run: str | Path) -> dict | None:
    """RUN/guidance.json, or None when the run has no guidance table."""
    path = Path(run) / FILE
    return json.loads(path.read_text()) if path.is_file() else None


def markdown_rows(result: dict) -> list[list[str]]:
    """One row per weight: w, agreement, classifier IS, FID, KID, per-digit KID (mean, worst)."""
    def pct(x):
        return f"{100 * x:.1f}%"

    out = []
    for r in result["rows"]:
        per = [k for k in r.get("kid_per_digit") or [] if k is not None]
        worst = min(range(10), key=lambda d: r["digit_agreement_per_digit"][d] if
                    r["digit_agreement_per_digit"][d] is not None else 2)
        out.append([f"{r['w']:g}", pct(r["digit_agreement"]),
                    f"{worst} ({pct(r['digit_agreement_per_digit'][worst])})",
                    f"{r['classifier_is']:.2f}",
                    f"{r['fid']:.1f}" if "fid" in r else "-",
                    f"{1000 * r['kid']:.1f}" if "kid" in r else "-",
                    f"{1000 * sum(per) / len(per):.1f} / {1000 * max(per):.1f}" if per else "-",
                    f"{r['n'] / r['sampling_s']:.1f}" if r.get("sampling_s") else "-"])
    return out


HEADER = ["w", "digit agreement", "worst digit (agreement)", "classifier IS", "FID", "KID x1000",
          "per-digit KID x1000 (mean / worst)", "images/s"]
