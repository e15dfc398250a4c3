"""How should OpenVINO spend the threads: one stream running all of a call's rows, or runtime.STREAMS
streams each running an even share at once? Times sampling (each preset's own sampler, ~20 net calls)
and Inception features three ways, round-robin over --rounds rounds after an untimed one: OpenVINO with
one stream, OpenVINO with STREAMS streams, torch eager. The nets are untrained (a non-zero output layer:
the arithmetic, not the weights, decides the speed), the graphs compiled as `mnistdiff sample` compiles
them (sample.runtime_net). Shows the spread of one machine from round to round, which benchmarks/run.py's
three rounds cannot.

    .venv/bin/python benchmarks/runtime_streams.py [--rounds 6] [--batch 64,128]

Writes benchmarks/runtime_streams.json and benchmarks/runtime_streams.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import run as bench  # noqa: E402

from mnistdiff import config as C, data, processes
from mnistdiff.sampling import runtime  # noqa: E402
from mnistdiff.sampling.generate import generate
from mnistdiff.sampling.load import runtime_net  # noqa: E402
from mnistdiff.evaluation import features

HERE = Path(__file__).resolve().parent


def round_robin(calls: dict, rounds: int) -> dict:
    """Seconds of each call in each timed round; every call runs once untimed first."""
    times = {k: [] for k in calls}
    for r in range(rounds + 1):
        for k, fn in calls.items():
            t0 = time.perf_counter()
            fn(r)
            if r:
                times[k].append(time.perf_counter() - t0)
    return times


def row(label: str, n: int, times: dict) -> dict:
    rate = {k: [n / s for s in v] for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in rate.items()}
    return {"what": label, "images_per_call": n, "median_images_per_s": med,
            "min_images_per_s": {k: min(v) for k, v in rate.items()},
            "max_images_per_s": {k: max(v) for k, v in rate.items()},
            "streams_vs_one": med["streams"] / med["one stream"], "streams_vs_torch": med["streams"] / med["torch"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch", default="64,128", help="sampling batch sizes, comma-separated")
    p.add_argument("--inception-batch", type=int, default=64)
    p.add_argument("--out", default=str(HERE))
    args = p.parse_args(argv)
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        batches = []
    if args.rounds < 1 or not batches or min(batches) < 1 or args.inception_batch < 1:
        print("runtime_streams.py: error: --rounds, --inception-batch and every --batch must be positive integers, "
              "e.g. --batch 64,128", file=sys.stderr)
        return 2
    t_start, load0, rows = time.perf_counter(), os.getloadavg()[0], []
    for preset in ("quick-unet", "ddpm-default"):
        cfg = C.preset(preset)
        net, process = bench._untrained(cfg), processes.build(cfg.process)
        sampler = process.default_sampler if process.family == "sigma" else "ddim"
        steps = 10 if sampler == "heun" else 20
        for n in batches:
            draw = lambda m, n=n: lambda seed: generate(  # noqa: E731
                process.sampling_net(m, cfg.process.prediction), process, cfg, n, seed=seed, sampler=sampler,
                sampler_options={"steps": steps})
            one = bench.with_streams(1, lambda n=n: runtime_net(net, cfg, "openvino", n))
            many = runtime_net(net, cfg, "openvino", n)
            times = round_robin({"one stream": draw(one), "streams": draw(many), "torch": draw(net)}, args.rounds)
            rows.append(row(f"{preset} sampling, {sampler}-{steps}", n, times))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    b = args.inception_batch
    images = data.load_split("test").images[:b * (args.rounds + 1)]
    eager = features.InceptionFeatures(runtime="torch", batch_size=b)
    one = bench.with_streams(1, lambda: features.InceptionFeatures(runtime="openvino", batch_size=b))
    many = features.InceptionFeatures(runtime="openvino", batch_size=b)
    extract = lambda ex: lambda r: features.extract(ex, images[r * b:(r + 1) * b], batch_size=b, progress=False)  # noqa: E731
    times = round_robin({"one stream": extract(one), "streams": extract(many), "torch": extract(eager)}, args.rounds)
    rows.append(row("Inception-v3 features", b, times))
    m = bench.machine_facts()
    meta = {**m, "streams": runtime.STREAMS, "rounds": args.rounds, "load_start": load0,
            "load_end": os.getloadavg()[0], "wall_s": time.perf_counter() - t_start}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime_streams.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# OpenVINO streams: one stream of all threads, or several at once\n",
             f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores (AVX512-BF16 {m['avx512_bf16']}), torch "
             f"{m['torch']}, {m['threads']} threads, by `python benchmarks/runtime_streams.py` in "
             f"{meta['wall_s'] / 60:.1f} min (1-min load average {load0:.1f} at the start, {meta['load_end']:.1f} "
             f"at the end). Round-robin over {args.rounds} timed rounds after an untimed one; images/s, median "
             f"(min-max) over the rounds; 'streams' is runtime.STREAMS = {runtime.STREAMS} streams, each running an "
             "even share of a call's rows. Untrained nets, fp32.\n",
             "| what | images a call | OpenVINO, one stream | OpenVINO, streams | torch eager | streams vs one | streams vs torch |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cell = lambda k: (f"{r['median_images_per_s'][k]:.1f} ({r['min_images_per_s'][k]:.1f}-"  # noqa: E731
                          f"{r['max_images_per_s'][k]:.1f})")
        lines.append(f"| {r['what']} | {r['images_per_call']} | {cell('one stream')} | {cell('streams')} | {cell('torch')} "
                     f"| {r['streams_vs_one']:.2f}x | {r['streams_vs_torch']:.2f}x |")
    (out / "runtime_streams.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
