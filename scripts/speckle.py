"""Where the background speckle comes from: each run's x0 estimate error on background and on ink
pixels of real test digits, as a function of the noise level sigma (in grey levels, 255 = full range).

    .venv/bin/python scripts/speckle.py runs/ablation/ddpm runs/ablation/edm --out docs/img/speckle.png

For a DDPM run sigma is the noise-to-signal ratio sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) of the integer
t closest to it, and x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t); for an edm run
x0_hat = D(x0 + sigma n; sigma). Both see the same 256 test digits and the same noise n. Background
pixels are those at 0 in the digit; an error there is what a sample shows as speckle or haze when the
sampler's last steps trust the estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from mnistdiff import data
from mnistdiff.processes import predictions
from mnistdiff.errors import UserError, run_script
from mnistdiff.sampling.load import load_trained

SIGMAS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
N_DIGITS = 256


@torch.inference_mode()
def x0_errors(run: Path, x0: torch.Tensor, noise: torch.Tensor) -> list[dict]:
    cfg, net, process = load_trained(run)
    background = x0 <= -0.5
    rows = []
    for sigma in SIGMAS:
        if process.family == "sigma":  # EDM: its own preconditioned denoiser
            x0_hat = process.denoise(net, x0 + sigma * noise, torch.full((x0.shape[0],), sigma))
            used = sigma
        elif process.schedule is not None:
            ab = process.schedule.alphas_cumprod
            ratio = ((1 - ab) / ab).sqrt()
            t = int((ratio[1:] - sigma).abs().argmin()) + 1
            t_vec = torch.full((x0.shape[0],), t)
            a, s = process.coefficients(t_vec)  # the run's own forward process, as training noised
            x_t = process.degrade(x0, t_vec, noise)
            x0_hat = predictions.to_x0("eps", net(x_t, t_vec / process.T).float(), x_t, a, s)
            used = (s / a).flatten()[0].item()
        else:
            raise UserError(f"{run} is a cold run; speckle.py compares gaussian (ddpm or edm) runs")
        err = (x0_hat - x0) * 255
        rows.append({"sigma": sigma, "sigma_used": round(used, 5),
                     "background_rms": err[background].square().mean().sqrt().item(),
                     "background_mean": err[background].mean().item(),
                     "ink_rms": err[~background].square().mean().sqrt().item()})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, help="PNG figure (and a .json beside it)")
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)
    x0 = data.to_model_range(data.load_split("test", args.data_dir).images[:N_DIGITS])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    table = {str(run): x0_errors(run, x0, noise) for run in args.runs}
    print("| run | " + " | ".join(f"sigma {s}" for s in SIGMAS) + " |")
    print("|---" * (len(SIGMAS) + 1) + "|")
    for run, rows in table.items():
        print(f"| {run} background | " + " | ".join(f"{r['background_rms']:.1f}" for r in rows) + " |")
        print(f"| {run} ink | " + " | ".join(f"{r['ink_rms']:.1f}" for r in rows) + " |")
    if args.out:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for run, rows in table.items():
            s = [r["sigma"] for r in rows]
            line, = ax.plot(s, [r["background_rms"] for r in rows], marker="o", label=f"{Path(run).name}: background")
            ax.plot(s, [r["ink_rms"] for r in rows], marker="x", ls="--", color=line.get_color(),
                    label=f"{Path(run).name}: ink")
        ax.set(xscale="log", yscale="log", xlabel="noise level sigma (data range [-0.5, 0.5])",
               ylabel="RMS error of x0_hat (grey levels)", title=f"x0 estimate error on {N_DIGITS} test digits")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
        args.out.with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_script(main)
