"""Denoising error of trained gaussian (DDPM) runs at chosen timesteps, on real test digits: the eps
MSE (what an eps-prediction net is trained on) and the RMS error of the x0 it implies, in pixels of
the [-0.5, 0.5] range. It shows where along t a loss weighting (e.g. --min-snr) left a net weak.

    .venv/bin/python scripts/denoise_error.py runs/ddpm-unet runs/quick-unet-minsnr0 [-n 256] [--t 1,5,20]

Prints a Markdown table, one column pair per run. Every run sees the same digits (the first n of the
test split) and, at each t, the same noise; nets predicting x0 or v are converted to eps first.
"""

from __future__ import annotations

import argparse
import sys

import torch

from mnistdiff import data
from mnistdiff.errors import UserError
from mnistdiff.sampling.load import load_trained


def errors(net, degradation, x0: torch.Tensor, ts: list[int]) -> list[tuple[float, float]]:
    """(eps MSE, x0 RMS error) at each t in ts; the noise at t is drawn from seed t."""
    out = []
    for t in ts:
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        a = degradation.schedule.alphas_cumprod[t]
        x_t = degradation.degrade(x0, torch.full((len(x0),), t), eps)
        with torch.inference_mode():
            eps_hat = net(x_t, torch.full((len(x0),), t / degradation.T)).float()
        mse = (eps_hat - eps).square().mean()
        # x0_hat - x0 = -sqrt((1 - a) / a) (eps_hat - eps): the same error, seen in pixels
        out.append((mse.item(), ((1 - a) / a * mse).sqrt().item()))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="trained gaussian run directories (or checkpoints)")
    p.add_argument("-n", type=int, default=256, help="test digits (default: 256)")
    p.add_argument("--t", default="1,5,20,50,100,300,600,900,1000",
                   help="timesteps, each in 1..T (default: 1,5,20,50,100,300,600,900,1000)")
    args = p.parse_args(argv)
    try:
        ts = [int(t) for t in args.t.split(",")]
    except ValueError:
        ts = []
    try:
        if not ts or args.n < 1:
            raise UserError(f"--t {args.t!r} must list integers and -n must be >= 1, e.g. --t 1,100,1000 -n 256")
        loaded = []
        for run in args.runs:
            cfg, net, degradation = load_trained(run)
            if degradation.family != "schedule":  # eps of a discrete noise schedule
                raise UserError(f"{run} is a {cfg.process.degradation} run; denoising error is for DDPM (gaussian) "
                                "runs")
            if not all(1 <= t <= degradation.T for t in ts):
                raise UserError(f"--t {args.t} must lie in 1..{degradation.T} (T of {run})")
            loaded.append((run, net, degradation))
        x0 = data.to_model_range(data.load_split("test").images[:args.n])  # missing MNIST: a UserError too
    except UserError as e:
        print(f"denoise_error.py: error: {e}", file=sys.stderr)
        return 2
    table = {run: errors(net, degradation, x0, ts) for run, net, degradation in loaded}
    lines = [f"Denoising error on the first {len(x0)} MNIST test digits (eps MSE / x0 RMS in pixels of [-0.5, 0.5])", "",
             "| t | " + " | ".join(f"{run}: eps MSE | {run}: x0 RMS" for run, _, _ in loaded) + " |",
             "| ---: |" + " ---: | ---: |" * len(loaded)]
    for i, t in enumerate(ts):
        lines.append(f"| {t} | " + " | ".join(f"{table[run][i][0]:.4f} | {table[run][i][1]:.4f}"
                                              for run, _, _ in loaded) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
