"""Could a cheaper convolution algorithm speed up the seed CNN? Its cost is four 7x7 convolutions at
28x28, which oneDNN runs directly: the training step as a whole reaches ~88% of this CPU's fp32 matmul
rate (benchmarks/results.md), so only an algorithm with fewer FLOPs can go faster. FFT convolution is the one that applies
to 7x7 kernels: a pointwise product of 32x32 spectra, ~5x fewer FLOPs. This times both, forward and
backward, layer by layer, and checks they compute the same thing.

    .venv/bin/python benchmarks/fft_conv.py [--batch 128] [--repeats 7]

Writes benchmarks/fft_conv.json and benchmarks/fft_conv.md. Not a lever in mnistdiff: see the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
N = 32  # the spectrum size: a 'same' 7x7 correlation of 28 pixels needs N >= 28 + 3 to avoid wrap-around


def kernel_matrix(w: torch.Tensor) -> torch.Tensor:
    """[F, 2C, 2O] real matrices, one per frequency, that multiply [re | im] input spectra by the
    kernel's (real arithmetic, so no complex BLAS, whose CPU backward copies conjugates per batch)."""
    O, C = w.shape[:2]
    K = torch.fft.rfft2(w.flip(-1, -2), s=(N, N))  # correlation = convolution with the flipped kernel
    kr, ki = K.real, K.imag
    # (xr + i xi)(kr + i ki): yr = xr kr - xi ki, yi = xr ki + xi kr
    M = torch.stack([torch.stack([kr, ki], -1), torch.stack([-ki, kr], -1)], -2)  # O, C, N, N/2+1, in, out
    return M.permute(2, 3, 4, 1, 5, 0).reshape(-1, 2 * C, 2 * O)


def fft_conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """F.conv2d(x, w, b, padding=k // 2) through 2-D real FFTs of size N."""
    B, C, H, W = x.shape
    O, p, kw = w.shape[0], w.shape[-1] // 2, N // 2 + 1
    X = torch.view_as_real(torch.fft.rfft2(x, s=(N, N)))                # B, C, N, kw, 2
    X = X.permute(2, 3, 0, 4, 1).reshape(N * kw, B, 2 * C)              # F, B, [re | im] x C
    Y = torch.bmm(X, kernel_matrix(w)).view(N, kw, B, 2, O).permute(2, 4, 0, 1, 3)
    y = torch.fft.irfft2(torch.view_as_complex(Y.contiguous()), s=(N, N))
    return y[..., p:p + H, p:p + W] + b[:, None, None]


def time_fwd_bwd(fn, x, w, b, g, repeats: int) -> tuple[float, float]:
    fwd, total = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = fn(x, w, b)
        t1 = time.perf_counter()
        y.backward(g)
        total.append(time.perf_counter() - t0)
        fwd.append(t1 - t0)
    return statistics.median(fwd), statistics.median(total)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128, help="images per step (the presets' batch)")
    p.add_argument("--widths", default="1,16,32,32,16", help="channels in and out of the seed CNN's blocks")
    p.add_argument("--repeats", type=int, default=7, help="timed forward+backward passes per algorithm and layer")
    p.add_argument("--out", default=str(HERE))
    args = p.parse_args(argv)
    widths = [int(c) for c in args.widths.split(",")]
    torch.manual_seed(0)
    rows, load0, t_start = [], os.getloadavg()[0], time.perf_counter()
    direct = lambda x, w, b: F.conv2d(x, w, b, padding=w.shape[-1] // 2)  # noqa: E731
    for c_in, c_out in zip(widths, widths[1:]):
        x = torch.randn(args.batch, c_in, 28, 28, requires_grad=True)
        w = (torch.randn(c_out, c_in, 7, 7) / (7 * c_in**0.5)).requires_grad_()
        b = torch.randn(c_out, requires_grad=True)
        g = torch.randn(args.batch, c_out, 28, 28)
        ref, got = direct(x, w, b), fft_conv2d(x, w, b)
        grads_ref, grads_got = torch.autograd.grad(ref, (x, w, b), g), torch.autograd.grad(got, (x, w, b), g)
        rel = lambda a, c: ((a - c).abs().max() / a.abs().max()).item()  # noqa: E731
        err = max([rel(ref, got)] + [rel(a, c) for a, c in zip(grads_ref, grads_got)])
        times = {}
        for _ in range(2):  # alternate the two, so both see the same load; the second round is kept
            for name, fn in (("direct", direct), ("fft", fft_conv2d)):
                times[name] = time_fwd_bwd(fn, x, w, b, g, args.repeats)
        direct_flops = 2 * args.batch * c_in * c_out * 49 * 28 * 28 * 3  # forward, grad input, grad weight
        mix_flops = 2 * args.batch * (2 * c_in) * (2 * c_out) * N * (N // 2 + 1) * 3
        rows.append({"c_in": c_in, "c_out": c_out, "direct_fwd_ms": 1e3 * times["direct"][0],
                     "direct_ms": 1e3 * times["direct"][1], "fft_fwd_ms": 1e3 * times["fft"][0],
                     "fft_ms": 1e3 * times["fft"][1], "speedup": times["direct"][1] / times["fft"][1],
                     "direct_gflop": direct_flops / 1e9, "fft_mix_gflop": mix_flops / 1e9, "max_rel_err": err})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    total_direct, total_fft = sum(r["direct_ms"] for r in rows), sum(r["fft_ms"] for r in rows)
    best = sum(min(r["direct_ms"], r["fft_ms"]) for r in rows)
    meta = {"date": datetime.datetime.now().isoformat(timespec="minutes"), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "batch": args.batch, "N": N, "load_start": load0,
            "load_end": os.getloadavg()[0], "wall_s": time.perf_counter() - t_start}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fft_conv.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# FFT convolution for the seed CNN's 7x7 layers\n",
             f"Measured {meta['date']} by `python benchmarks/fft_conv.py`, torch {meta['torch']}, "
             f"{meta['threads']} threads, batch {args.batch}, median of {args.repeats} forward+backward passes per "
             f"layer after a warm round (1-min load average {load0:.1f} at the start, {meta['load_end']:.1f} at "
             f"the end). FFT: `torch.fft.rfft2` to {N}x{N}, one real batched matmul per frequency, `irfft2`; "
             "the largest relative difference from `F.conv2d` over output and all gradients is in the last "
             "column. GFLOP: the direct convolution's multiply-adds (x2, forward and both backward passes) "
             "against the FFT's spectral products alone (its transforms are extra).\n",
             "| layer | direct fwd (ms) | direct fwd+bwd (ms) | FFT fwd (ms) | FFT fwd+bwd (ms) | FFT speed-up "
             "| direct GFLOP | FFT product GFLOP | max rel. diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['c_in']} -> {r['c_out']} | {r['direct_fwd_ms']:.1f} | {r['direct_ms']:.1f} "
                     f"| {r['fft_fwd_ms']:.1f} | {r['fft_ms']:.1f} | {r['speedup']:.2f}x | {r['direct_gflop']:.1f} "
                     f"| {r['fft_mix_gflop']:.2f} | {r['max_rel_err']:.1e} |")
    lines += ["", f"All four layers: direct {total_direct:.0f} ms, FFT {total_fft:.0f} ms "
              f"({total_direct / total_fft:.2f}x); the faster of the two per layer {best:.0f} ms "
              f"({total_direct / best:.2f}x)."]
    (out / "fft_conv.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
