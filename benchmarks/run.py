"""mnistdiff against its peers, side by side in one run: training, sampling, evaluation, roofline,
and each speed lever on and off. Writes benchmarks/results.json and benchmarks/results.md.

    make bench        # installs benchmarks/requirements.txt (diffusers, for the sampling peer), then:
    MNISTDIFF_DATA=../shared/data/mnist .venv/bin/python benchmarks/run.py

It also replaces the table between the performance markers in docs/performance.md (--no-readme to leave it).

Only ratios measured within one run mean anything on a shared machine; the load average at each
section's start is recorded beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import peers  # noqa: E402
from readme_results import splice  # noqa: E402

from mnistdiff import config as C, data, nets, processes
from mnistdiff.processes import losses
from mnistdiff.sampling import runtime, samplers  # noqa: E402
from mnistdiff.training import loop as training  # noqa: E402
from mnistdiff.sampling import guidance  # noqa: E402
from mnistdiff.sampling.load import NET_ROWS, load_trained, runtime_net
from mnistdiff.sampling.generate import generate  # noqa: E402
from mnistdiff import machine
from mnistdiff.training import optim
from mnistdiff.sampling import ddpm
from mnistdiff.training import rundir
from mnistdiff.evaluation import features

HERE = Path(__file__).resolve().parent
README_START, README_END = "<!-- performance:start -->", "<!-- performance:end -->"


def load() -> float:
    return os.getloadavg()[0]


def machine_facts() -> dict:
    flags = machine.cpu_flags()
    return {"cpu": machine.cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "avx512_bf16": "avx512_bf16" in flags, "avx2": "avx2" in flags,
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "python": platform.python_version()}


def matmul_gflops(n: int, dtype, seconds: float = 3.0) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    k, t0 = 0, time.perf_counter()
    while k == 0 or time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
    return 2 * n**3 * k / (time.perf_counter() - t0) / 1e9


def train_flops_per_image(cfg) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by FlopCounterMode."""
    net, degradation = nets.build(cfg.model), processes.build(cfg.process)
    bs = 16
    x0, t, noise = torch.rand(bs, 1, 28, 28) - 0.5, torch.randint(1, degradation.T + 1, (bs,)), torch.randn(bs, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        losses.diffusion_loss(net, degradation, x0, t, noise).mean().backward()
    return counter.get_total_flops() / bs


def forward_flops_per_image(net, *inputs) -> float:
    """FLOPs of one inference call per image (FlopCounterMode: convolutions and matmuls)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(*inputs)
    return counter.get_total_flops() / len(inputs[0])


def bench_training(cfg, args, work: Path) -> dict:
    """mnistdiff's own train() against the starter-code loop: same net init, images, batch, steps."""
    steps, bs = args.train_steps, cfg.train.batch_size
    cfg = C.apply(cfg, {"subset": steps * bs, "epochs": 2, "sample_epochs": ()})
    images = training.training_images(cfg, None)
    # One untimed step first: oneDNN builds its kernels for these shapes once per process, and
    # whichever loop ran first would otherwise pay for both.
    warm, degradation = nets.build(cfg.model), processes.build(cfg.process)
    x0 = data.to_model_range(images[:bs])
    losses.diffusion_loss(warm, degradation, x0, torch.randint(1, degradation.T + 1, (bs,)),
                          torch.randn_like(x0)).mean().backward()
    out = {"steps": steps, "batch_size": bs, "load_start": load()}
    # Epoch 1 is exactly `steps` steps; train() times it itself and logs images_per_s in its epoch record.
    training.train(cfg, work / "ours", progress=False, stop_after_steps=steps + 1)
    records = rundir.read_metrics(work / "ours")
    out["precision"] = C.load_file(work / "ours" / "config.json")["train"]["precision"]  # what `auto` chose
    epoch = next(r for r in records if r["type"] == "epoch")
    ours_losses = [r["loss"] for r in records if r["type"] == "iter"][:steps]
    torch.manual_seed(cfg.train.seed)
    net = nets.build(cfg.model)
    ref_losses, ref_s = peers.reference_training(net, processes.build(cfg.process).schedule, images,
                                                 steps=steps, batch_size=bs, lr=cfg.train.lr, seed=cfg.train.seed)
    tail = max(1, steps // 2)
    out.update(ours_images_per_s=epoch["images_per_s"], ref_images_per_s=steps * bs / ref_s,
               ours_loss_tail=statistics.fmean(ours_losses[-tail:]), ref_loss_tail=statistics.fmean(ref_losses[-tail:]),
               loss_tail_steps=tail, load_end=load())
    out["ratio"] = out["ours_images_per_s"] / out["ref_images_per_s"]
    return out


LEVERS = [  # (label, TrainConfig overrides); the first is the reference every ratio divides by
    ("torch defaults (for-loop Adam, NCHW, fp32)", {"adam": "for-loop"}),
    ("adam=foreach", {"adam": "foreach"}),
    ("adam=fused", {"adam": "fused"}),
    ("channels_last", {"adam": "for-loop", "channels_last": True}),
    ("precision=bf16", {"adam": "for-loop", "precision": "bf16"}),
]


def unet_levers(batch_size: int) -> list[tuple[str, dict]]:
    """Levers of the quality UNet's step (ddpm-unet), the batch among them."""
    fp32 = {"adam": "for-loop", "precision": "fp32", "batch_size": batch_size}
    return [(f"torch defaults (for-loop Adam, NCHW, fp32, batch {batch_size})", fp32),
            ("adam=foreach", {**fp32, "adam": "foreach"}),
            ("channels_last", {**fp32, "channels_last": True}),
            (f"batch {batch_size // 2}", {**fp32, "batch_size": max(1, batch_size // 2)}),
            # the presets train at batch 32 (4x the steps per epoch): what it costs per image
            (f"batch {batch_size // 4}", {**fp32, "batch_size": max(1, batch_size // 4)}),
            (f"batch {2 * batch_size}", {**fp32, "batch_size": 2 * batch_size}),
            ("adam=fused", {**fp32, "adam": "fused"}),
            ("precision=auto", {**fp32, "precision": "auto"}),
            # the step is small at batch 32, so Adam's per-tensor loop weighs more once bf16 has sped up the rest
            ("precision=auto, adam=fused", {**fp32, "precision": "auto", "adam": "fused"})]


def bench_levers(cfg, args, levers=LEVERS) -> list[dict]:
    """Step time of the training step with each lever, round-robin so all see the same load; images/s
    per lever at that lever's own batch size."""
    default_threads = torch.get_num_threads()
    other = 1 if default_threads != 1 else os.cpu_count()  # the thread count this run does not use
    base_over = levers[0][1]
    levers = levers + [(f"threads={other}", {**base_over, "threads": other})]
    levers += [("compile", {**base_over, "compile": True})] if args.compile else []
    # fp32 unless the lever names a precision: the presets' `auto` would be bf16 on some machines
    configs = [(label, over, machine.resolve_precision(C.apply(cfg, {"precision": "fp32", **over}))[0])
               for label, over in levers]
    images = data.to_model_range(data.load_split("train").images[:max(lc.train.batch_size for *_, lc in configs)])
    native_bf16 = machine.auto_precision("cpu")[0] == "bf16"
    steppers, times, extra = [], {}, {}
    for label, over, lc in configs:
        label = label.replace("precision=auto", f"precision=auto ({lc.train.precision})")
        times[label] = []
        torch.manual_seed(0)
        net = optim.prepare(nets.build(lc.model), lc.train)
        opt, degradation = optim.optimizer(net, lc.train), processes.build(lc.process)
        g = torch.Generator().manual_seed(0)
        x0 = images[:lc.train.batch_size]

        def step(net=net, opt=opt, degradation=degradation, g=g, lc=lc, x0=x0):
            machine.set_threads(lc.train.threads or default_threads)
            t = torch.randint(1, degradation.T + 1, (len(x0),), generator=g)
            with training.autocast(lc, torch.device("cpu")):
                loss = losses.diffusion_loss(net, degradation, x0, t, torch.randn(x0.shape, generator=g)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

        t0 = time.perf_counter()
        step()  # warm-up (and, for compile, the compilation)
        extra[label] = time.perf_counter() - t0
        steppers.append((label, step, lc))
    for _ in range(args.lever_rounds):
        for label, step, lc in steppers:
            emulated = lc.train.precision == "bf16" and not native_bf16
            for _ in range(1 if emulated else args.lever_steps):  # emulated bf16: ~16x slower, one step shows it
                t0 = time.perf_counter()
                step()
                times[label].append(time.perf_counter() - t0)
    torch.set_num_threads(default_threads)
    rate = {label: lc.train.batch_size / statistics.median(times[label]) for label, _, lc in steppers}
    return [{"lever": label, "batch_size": lc.train.batch_size, "images_per_s": rate[label],
             "ratio": rate[label] / rate[steppers[0][0]], "first_step_s": extra[label],
             "steps_timed": len(times[label])} for label, _, lc in steppers]


def bench_sampling(net, schedule, args) -> dict:
    """1000-step ancestral sampling, mnistdiff vs diffusers, interleaved step by step: each of
    mnistdiff's steps is followed (in its callback, timed apart) by one diffusers step."""
    n = args.sample_n
    x_T = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    sched = peers.diffusers_scheduler(schedule)
    state = {"x": x_T.clone(), "i": 0, "peer_s": 0.0, "g": torch.Generator().manual_seed(8)}
    T = schedule.T

    def peer_step(t, x, x0_hat):
        t0 = time.perf_counter()
        with torch.inference_mode():
            k = sched.timesteps[state["i"]]
            eps = net(state["x"], torch.full((n,), (int(k) + 1) / T))
            state["x"] = sched.step(eps, k, state["x"], generator=state["g"]).prev_sample
        state["i"] += 1
        state["peer_s"] += time.perf_counter() - t0

    load0 = load()
    t0 = time.perf_counter()
    ours = ddpm.sample_ddpm(net, schedule, x_T, generator=torch.Generator().manual_seed(8), callback=peer_step)
    ours_s = time.perf_counter() - t0 - state["peer_s"]
    diff = (ours - state["x"]).abs().max().item()
    mean_diff = (ours - state["x"]).abs().mean().item()
    same_u8 = (data.to_uint8(ours) == data.to_uint8(state["x"])).float().mean().item()
    # Equal up to float32 rounding carried through 1000 steps (mnistdiff keeps alpha_bar in float32, whose
    # 1 - alpha_bar_t is good to ~3e-4 near t = 1); a different variance or schedule differs by ~0.1-0.5.
    assert diff < 1e-2 and mean_diff < 1e-3, \
        f"mnistdiff and diffusers disagree (max {diff}, mean {mean_diff} in model range): not the same sampler"
    t0 = time.perf_counter()
    ddpm.sample_ddim(net, schedule, x_T, steps=50)
    ddim_s = time.perf_counter() - t0
    return {"n": n, "T": T, "ours_images_per_s": n / ours_s, "diffusers_images_per_s": n / state["peer_s"],
            "ratio": state["peer_s"] / ours_s, "max_abs_diff": diff, "mean_abs_diff": mean_diff, "same_uint8_pixels": same_u8,
            "ddim50_images_per_s": n / ddim_s, "load_start": load0, "load_end": load()}


def bench_eval(args) -> dict:
    """Inception pool3 features: mnistdiff's extractor vs the naive one, alternating halves."""
    imgs = data.load_split("test").images[:args.eval_n]
    extractor = features.InceptionFeatures()
    half = args.eval_n // 2
    ours_s = naive_s = 0.0
    feats_ours, feats_naive = [], []
    load0 = load()
    for part in (imgs[:half], imgs[half:]):
        t0 = time.perf_counter()
        feats_ours.append(features.extract(extractor, part, batch_size=args.eval_batch, progress=False))
        ours_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        feats_naive.append(peers.naive_inception(extractor.path, part, batch_size=32))
        naive_s += time.perf_counter() - t0
    a, b = torch.cat(feats_ours), torch.cat(feats_naive)
    rel = ((a - b).norm() / b.norm()).item()
    return {"n": args.eval_n, "ours_batch": args.eval_batch, "ours_images_per_s": args.eval_n / ours_s,
            "naive_images_per_s": args.eval_n / naive_s, "ratio": naive_s / ours_s,
            "feature_rel_diff": rel, "load_start": load0, "load_end": load()}


def _alternate(fn_a, fn_b, parts) -> tuple[list, list, float, float]:
    """Run a and b on each part in turn (so load changes hit both alike): outputs and total seconds."""
    out_a, out_b, sec_a, sec_b = [], [], 0.0, 0.0
    for part in parts:
        t0 = time.perf_counter()
        out_a.append(fn_a(part))
        sec_a += time.perf_counter() - t0
        t0 = time.perf_counter()
        out_b.append(fn_b(part))
        sec_b += time.perf_counter() - t0
    return out_a, out_b, sec_a, sec_b


def _untrained(cfg) -> torch.nn.Module:
    """The preset's net, seeded, with a non-zero output layer (the UNet's output conv starts at zero): the
    arithmetic, not the weights, decides the speed."""
    torch.manual_seed(0)
    net = nets.build(cfg.model).eval()
    with torch.no_grad():
        for p in list(net.parameters())[-2:]:
            p.normal_(0, 0.05)
    return net


def with_streams(streams: int, build):
    """build() with runtime.STREAMS set to `streams` (the streams runtime.prepare gives OpenVINO)."""
    saved, runtime.STREAMS = runtime.STREAMS, streams
    try:
        return build()
    finally:
        runtime.STREAMS = saved


def bench_runtime(args) -> dict:
    """The inference runtime (sampling/runtime.py) against torch eager: Inception features, and sampling with about
    20 net calls (each preset's own sampler: Heun-10 for the EDM UNet, DDIM-20 for the report's CNN) from the
    same noise, the net compiled as `mnistdiff sample --runtime openvino` compiles it (sample.runtime_net;
    untrained nets with a non-zero output layer: the arithmetic, not the weights, decides the speed). Each
    side runs once untimed first: oneDNN and OpenVINO both prepare their kernels at a shape's first call."""
    res = {"load_start": load()}
    n_inc, b = args.runtime_eval_n, args.eval_batch
    imgs = data.load_split("test").images[:n_inc + min(b, n_inc)]
    eager = features.InceptionFeatures(runtime="torch", batch_size=b)
    fast = features.InceptionFeatures(runtime="openvino", batch_size=b)
    extract = lambda ex: lambda part: features.extract(ex, part, batch_size=b, progress=False)  # noqa: E731
    _alternate(extract(fast), extract(eager), (imgs[n_inc:],))  # the warm-up batch (not among the timed images)
    a, b_, sec_a, sec_b = _alternate(extract(fast), extract(eager), [imgs[i:i + b] for i in range(0, n_inc, b)])
    a, b_ = torch.cat(a), torch.cat(b_)
    res["inception"] = {"runtime": fast.runtime, "n": n_inc, "batch": b, "ours_images_per_s": n_inc / sec_a,
                        "torch_images_per_s": n_inc / sec_b, "ratio": sec_b / sec_a,
                        "feature_rel_diff": ((a - b_).norm() / b_.norm()).item(),
                        "flops_per_image": forward_flops_per_image(eager.net, features.resize_for_inception(imgs[:1]))}
    n = args.runtime_n
    for name, preset in (("unet", "quick-unet"), ("cnn", "ddpm-default")):
        cfg = C.preset(preset)
        net = _untrained(cfg)
        process = processes.build(cfg.process)
        sampler = process.default_sampler if process.family == "sigma" else "ddim"
        steps = 10 if sampler == "heun" else 20  # Heun: 2 * steps - 1 = 19 net calls
        compiled = runtime_net(net, cfg, "openvino", n)
        draw = lambda m: lambda seed: generate(  # noqa: E731
            process.sampling_net(m, cfg.process.prediction), process, cfg, n, seed=seed, sampler=sampler,
            sampler_options={"steps": steps})
        _alternate(draw(compiled), draw(net), (0,))  # warm-up
        a, b_, sec_a, sec_b = _alternate(draw(compiled), draw(net), range(1, args.runtime_rounds + 1))
        # the same graph in one stream of all threads, against the default runtime.STREAMS streams
        streams, one = runtime.STREAMS, with_streams(1, lambda: runtime_net(net, cfg, "openvino", n))
        _alternate(draw(one), draw(compiled), (0,))
        _, _, sec_one, sec_many = _alternate(draw(one), draw(compiled), range(1, args.runtime_rounds + 1))
        m, calls = args.runtime_rounds * n, 2 * steps - 1 if sampler == "heun" else steps
        res[name] = {"runtime": getattr(compiled, "runtime", "torch"), "n": m, "batch": n, "sampler": f"{sampler}-{steps}",
                     "ours_images_per_s": m / sec_a, "torch_images_per_s": m / sec_b, "ratio": sec_b / sec_a,
                     "same_uint8_pixels": (torch.cat(a) == torch.cat(b_)).float().mean().item(),
                     "streams": streams, "streams_vs_one_ratio": sec_one / sec_many,
                     "flops_per_image": calls * forward_flops_per_image(net, torch.zeros(1, 1, 28, 28), torch.zeros(1))}
    res["guided"] = bench_guided(args)
    res["load_end"] = load()
    return res


def bench_guided(args) -> dict:
    """Guided DDIM on the quality UNet at the CLI's batch (--guided-n images: twice as many net rows per call),
    the net evaluated sample.NET_ROWS rows at a time (runtime.Chunked, what load_trained returns) against the
    whole batch at once; torch eager on both sides, the same noise."""
    cfg = C.preset("ddpm-unet")
    net = _untrained(cfg)
    process, n = processes.build(cfg.process), args.guided_n
    chunked = process.sampling_net(runtime.Chunked(net, NET_ROWS), cfg.process.prediction)
    whole = process.sampling_net(net, cfg.process.prediction)
    digits = guidance.labels(",".join(map(str, range(10))), n)
    draw = lambda m: lambda seed: generate(m, process, cfg, n, seed=seed, sampler="ddim", batch_size=n,  # noqa: E731
                                           sampler_options={"steps": 5}, digits=digits, guidance=0.5)
    a, b, sec_a, sec_b = _alternate(draw(chunked), draw(whole), (1, 2))
    return {"n": 2 * n, "rows": NET_ROWS, "sampler": "ddim-5, guidance 0.5", "ours_images_per_s": 2 * n / sec_a,
            "whole_images_per_s": 2 * n / sec_b, "ratio": sec_b / sec_a,
            "same_uint8_pixels": (torch.cat(a) == torch.cat(b)).float().mean().item()}


def bench_evaluate(args) -> dict:
    """`mnistdiff evaluate RUN -n N` end to end (reference features from the cache once made), with the
    inference runtime the CLI uses by default (auto); the result lands in RUN/eval/ as any evaluation."""
    from mnistdiff.evaluation.evaluate import evaluate_run

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    t0, load0 = time.perf_counter(), load()
    conditional = C.load_file(Path(args.evaluate) / "config.json")["model"].get("conditional", False)
    options = {"steps": args.evaluate_steps, "clip": True} if args.evaluate_sampler == "ddim" else None
    guided = {"digit": "0,1,2,3,4,5,6,7,8,9", "guidance": args.evaluate_guidance} if conditional else {}
    path, result = evaluate_run(args.evaluate, n=args.evaluate_n, n_ref=args.evaluate_ref, runtime="auto", progress=False,
                                name=f"benchmark-n{args.evaluate_n}-{stamp}", sampler=args.evaluate_sampler,
                                sampler_options=options, **guided)
    timing = result["timing"]
    return {"run": str(args.evaluate), "n": args.evaluate_n, "n_ref": args.evaluate_ref, "file": str(path), "wall_s": time.perf_counter() - t0,
            "sampling_s": timing["sampling_s"], "metrics_s": timing["metrics_s"], "setup_s": timing["setup_s"],
            "sampler": result["samples"]["sampler"], "sampler_options": options, "guidance": guided.get("guidance"),
            "fid": result.get("fid"), "kid": result.get("kid"), "load_start": load0, "load_end": load()}


def runtime_roofline(rt: dict, fp32_gflops: float) -> str:
    """What the runtime rows' targets ask of the machine: each side's nominal GFLOP/s (FlopCounterMode's count
    of the torch graph) against the fp32 matmul rate. OpenVINO has passed that rate for Inception (it must
    multiply less than counted, as Winograd 3x3 convolutions do); torch eager has not."""
    parts = []
    for key, label, target in (("inception", "Inception-v3", 2.5), ("unet", "the UNet's sampling", 3.0)):
        r = rt.get(key)
        if not r or "flops_per_image" not in r:
            continue
        g = lambda rate: r["flops_per_image"] * rate / 1e9  # noqa: E731
        parts.append(f"{label} costs {r['flops_per_image'] / 1e9:.2f} GFLOP per image: torch eager runs "
                     f"{g(r['torch_images_per_s']):.0f} GFLOP/s ({100 * g(r['torch_images_per_s']) / fp32_gflops:.0f}% "
                     f"of the fp32 matmul rate), OpenVINO {g(r['ours_images_per_s']):.0f} "
                     f"({100 * g(r['ours_images_per_s']) / fp32_gflops:.0f}%), and {target:g}x torch would be "
                     f"{100 * target * g(r['torch_images_per_s']) / fp32_gflops:.0f}%")
    return "Runtime roofline (fp32, nominal FLOPs): " + "; ".join(parts) + "." if parts else ""


def markdown(res: dict) -> str:
    m, tr, sa, ev, rf = res["machine"], res["training"], res["sampling"], res["evaluation"], res["roofline"]
    lines = [
        f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores (AVX2 {m['avx2']}, AVX512-BF16 "
        f"{m['avx512_bf16']}), torch {m['torch']}, {m['threads']} threads, by `python benchmarks/run.py` "
        f"in {res['wall_s'] / 60:.1f} min; 1-min load average {res['load_start']:.1f} at the start, "
        f"{res['load_end']:.1f} at the end (other jobs slow both sides of a row alike: compare within a row, "
        "not across runs).",
        "",
        "| comparison | mnistdiff | peer | ratio | target | check |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| training, images/s (batch {tr['batch_size']}, {tr['steps']} steps each; ours in {tr['precision']}, the "
        f"preset's precision auto) | {tr['ours_images_per_s']:.1f} "
        f"| {tr['ref_images_per_s']:.1f} (starter-code Dataset + DataLoader, fp32) | {tr['ratio']:.2f}x | 2.0x "
        f"| mean loss of the last {tr['loss_tail_steps']} steps: {tr['ours_loss_tail']:.4f} vs {tr['ref_loss_tail']:.4f} |",
        f"| sampling, images/s ({sa['T']}-step ancestral, {sa['n']} images) | {sa['ours_images_per_s']:.2f} "
        f"| {sa['diffusers_images_per_s']:.2f} (diffusers DDPMScheduler loop) | {sa['ratio']:.2f}x | 1.2x "
        f"| same images: abs diff max {sa['max_abs_diff']:.1e}, mean {sa['mean_abs_diff']:.1e} (range 1); "
        f"{100 * sa['same_uint8_pixels']:.2f}% equal uint8 pixels |",
        f"| evaluation, Inception images/s ({ev['n']} images) | {ev['ours_images_per_s']:.2f} (batch {ev['ours_batch']}, "
        f"channels_last) | {ev['naive_images_per_s']:.2f} (NCHW, batch 32) | {ev['ratio']:.2f}x | - "
        f"| features agree: relative diff {ev['feature_rel_diff']:.1e} |",
        f"| DDIM, 50 steps, images/s | {sa['ddim50_images_per_s']:.2f} | {sa['ours_images_per_s']:.2f} (DDPM, 1000 steps) "
        f"| {sa['ddim50_images_per_s'] / sa['ours_images_per_s']:.1f}x | - | quality: benchmarks/ddim_steps.md |",
    ]
    if "runtime" in res:
        rt = res["runtime"]
        inc = rt["inception"]
        lines.append(f"| Inception features, images/s ({inc['n']} images, batch {inc.get('batch', '-')}, after one untimed batch) | {inc['ours_images_per_s']:.2f} "
                     f"(--runtime {inc['runtime']}) | {inc['torch_images_per_s']:.2f} (torch eager) | {inc['ratio']:.2f}x "
                     f"| 2.5x | features agree: relative diff {inc['feature_rel_diff']:.1e} |")
        for name, label, target in (("unet", "quality UNet (16,32,64)", "3x"), ("cnn", "report's CNN", "-")):
            r = rt[name]
            lines.append(f"| {label} sampling, {r.get('sampler', 'ddim-20')}, images/s ({r['n']} images in batches of {r.get('batch', '-')}) | {r['ours_images_per_s']:.1f} "
                         f"(--runtime {r['runtime']}) | {r['torch_images_per_s']:.1f} (torch eager) | {r['ratio']:.2f}x "
                         f"| {target} | {100 * r['same_uint8_pixels']:.2f}% equal uint8 pixels from the same noise"
                         + (f"; {r['streams']} OpenVINO streams {r['streams_vs_one_ratio']:.2f}x one" if "streams" in r else "")
                         + " |")
        if "guided" in rt:
            g = rt["guided"]
            lines.append(f"| quality UNet guided sampling, {g['sampler']}, images/s ({g['n']} images, batches of "
                         f"{g['n'] // 2}: {g['n']} net rows a call) | {g['ours_images_per_s']:.1f} (net in chunks of "
                         f"{g['rows']} rows) | {g['whole_images_per_s']:.1f} (the whole batch at once) | "
                         f"{g['ratio']:.2f}x | - | {100 * g['same_uint8_pixels']:.2f}% equal uint8 pixels from the same noise |")
    if "evaluate" in res:
        e = res["evaluate"]
        opts = "".join(f", {k} {v}" for k, v in (e.get("sampler_options") or {}).items())
        guided = f", digits 0-9 in turn at guidance {e['guidance']:g}" if e.get("guidance") is not None else ""
        kid = f", KID {e['kid']:.4f}" if e.get("kid") is not None else ""
        lines.append(f"| `mnistdiff evaluate {e['run']} -n {e['n']}` end to end (vs {e['n_ref']} test digits, "
                     f"{e['sampler']}{opts}{guided}, --runtime auto) "
                     f"| {e['wall_s'] / 60:.1f} min | - | - | - | sampling {e['sampling_s'] / 60:.1f} min, setup "
                     f"{e['setup_s'] / 60:.1f} min, metrics {e['metrics_s'] / 60:.1f} min; FID {e['fid']:.2f}{kid} |")
    lines += [
        "",
        f"Roofline: a training step costs {rf['flops_per_image'] / 1e6:.0f} MFLOP per image (FlopCounterMode, forward "
        f"+ backward), so {tr['ours_images_per_s']:.1f} images/s is {rf['achieved_gflops']:.1f} GFLOP/s: "
        f"{100 * rf['fraction_fp32']:.0f}% of this machine's fp32 matmul ({rf['fp32_gflops']:.1f} GFLOP/s, "
        f"{rf['fp32_size']}x{rf['fp32_size']}) and {100 * rf['fraction_bf16']:.0f}% of its bf16 matmul "
        f"({rf['bf16_gflops']:.2f} GFLOP/s, {rf['bf16_size']}x{rf['bf16_size']}; target 60%).",
    ]
    if "runtime" in res:
        lines += ["", runtime_roofline(res["runtime"], rf["fp32_gflops"])]
    lines += [
        "",
        "Speed levers (TrainConfig fields), training step round-robin, median step time:",
        "",
        "| lever | images/s | vs torch defaults | first step (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for lv in res["levers"]:
        lines.append(f"| {lv['lever']} | {lv['images_per_s']:.1f} | {lv['ratio']:.2f}x | {lv['first_step_s']:.1f} |")
    if "unet_levers" in res:
        u = res["unet_roofline"]
        lines += [
            "",
            f"The quality UNet (ddpm-unet: 16/32/64 channels, attention at 7x7): a training step costs "
            f"{u['flops_per_image'] / 1e6:.0f} MFLOP per image, so its {u['images_per_s']:.1f} images/s with torch "
            f"defaults is {u['achieved_gflops']:.1f} GFLOP/s, {100 * u['fraction_fp32']:.0f}% of the fp32 matmul peak "
            "above (small convolutions: 16 channels at 28x28 px keep oneDNN far below its peak). Levers, round-robin "
            "as above (target: 1.5x):",
            "",
            "| lever | images/s | vs torch defaults | first step (s) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for lv in res["unet_levers"]:
            lines.append(f"| {lv['lever']} | {lv['images_per_s']:.1f} | {lv['ratio']:.2f}x | {lv['first_step_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-steps", type=int, default=60, help="optimizer steps of each training loop")
    p.add_argument("--lever-steps", type=int, default=3, help="timed steps per lever per round")
    p.add_argument("--lever-rounds", type=int, default=2)
    p.add_argument("--sample-n", type=int, default=4, help="images sampled by each sampler (1000 steps)")
    p.add_argument("--eval-n", type=int, default=64, help="images through each Inception extractor")
    p.add_argument("--eval-batch", type=int, default=64, help="mnistdiff's Inception batch")
    p.add_argument("--runtime-n", type=int, default=64, help="images per sampling batch of the runtime rows")
    p.add_argument("--runtime-rounds", type=int, default=3, help="timed sampling batches of each runtime row, each side")
    p.add_argument("--runtime-eval-n", type=int, default=128,
                   help="images through each side of the Inception runtime row (in batches of --eval-batch)")
    p.add_argument("--guided-n", type=int, default=500, help="images per guided sampling batch (the CLI's default)")
    p.add_argument("--fp32-size", type=int, default=2048)
    p.add_argument("--bf16-size", type=int, default=1024,
                   help="bf16 matmul size (one 2048^3 bf16 matmul takes minutes without AVX512-BF16)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (compiles for minutes here)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for every section, both sides (0: torch's default, one per core)")
    p.add_argument("--batch-size", type=int, default=0,
                   help="training batch of every section (0: the ddpm-default preset's, 128)")
    p.add_argument("--evaluate", metavar="RUN", help="also time `mnistdiff evaluate RUN -n N` end to end (the best "
                   "model's run; tens of minutes at N = 10000 on 2 cores)")
    p.add_argument("--evaluate-n", type=int, default=10_000, help="samples of the end-to-end evaluation")
    p.add_argument("--evaluate-ref", type=int, default=10_000, help="test digits it compares them with")
    p.add_argument("--evaluate-sampler", default="ddim", help="its sampler (ddim: clipped, --evaluate-steps steps; "
                   "the protocol of results/ddpm-unet-20ep.md); a conditional run draws the ten digits in turn")
    p.add_argument("--evaluate-steps", type=int, default=50)
    p.add_argument("--evaluate-guidance", type=float, default=0.5, help="guidance weight for a conditional run")
    p.add_argument("--out", default=str(HERE), help="folder for results.json and results.md")
    p.add_argument("--readme", default=str(HERE.parent / "docs" / "performance.md"),
                   help="page whose performance table this run replaces (default: docs/performance.md)")
    p.add_argument("--no-readme", action="store_true", help="leave that page alone")
    args = p.parse_args(argv)
    readme = None if args.no_readme else Path(args.readme)
    counts = (args.train_steps, args.sample_n, args.lever_steps, args.lever_rounds, args.eval_batch, args.runtime_n,
              args.guided_n, args.runtime_rounds, args.runtime_eval_n)
    problem = None
    if args.batch_size < 0 or args.eval_n < 2 or min(counts) < 1:
        problem = "--batch-size must be >= 0, --eval-n >= 2 and the other step, round and image counts >= 1"
    elif args.evaluate and not (Path(args.evaluate) / "config.json").is_file():
        problem = f"--evaluate {args.evaluate} is not a run directory (no config.json); pass one made by `mnistdiff train`"
    elif args.evaluate_sampler not in samplers.SAMPLERS or args.evaluate_steps < 1:
        problem = (f"--evaluate-sampler {args.evaluate_sampler} is not a sampler or --evaluate-steps "
                   f"{args.evaluate_steps} < 1; samplers: {', '.join(samplers.SAMPLERS)}")
    elif args.evaluate_n < 10 or not 10 <= args.evaluate_ref <= 10_000:
        problem = "--evaluate-n must be >= 10 (IS uses 10 splits) and --evaluate-ref in [10, 10000] (the test set)"
    elif readme is not None and not readme.is_file():
        problem = f"{readme} does not exist; pass --readme PATH or --no-readme"
    if problem:
        print(f"run.py: error: {problem}", file=sys.stderr)
        return 2
    machine.set_threads(args.threads)
    t_start, load0 = time.perf_counter(), load()
    cfg = C.preset("ddpm-default")
    if args.batch_size:
        cfg = C.apply(cfg, {"batch_size": args.batch_size})
    res = {"machine": machine_facts(), "args": vars(args), "load_start": load0}

    def section(name, fn, *a):
        t0 = time.perf_counter()
        print(f"[{time.perf_counter() - t_start:6.0f} s] {name} ...", file=sys.stderr, flush=True)
        res[name] = fn(*a)
        print(f"         {name}: {time.perf_counter() - t0:.0f} s: {json.dumps(res[name], default=str)[:400]}",
              file=sys.stderr, flush=True)

    fp32 = matmul_gflops(args.fp32_size, torch.float32)
    bf16 = matmul_gflops(args.bf16_size, torch.bfloat16, seconds=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        section("training", bench_training, cfg, args, Path(tmp))
        _, net, degradation = load_trained(Path(tmp) / "ours")
        section("sampling", bench_sampling, net, degradation.schedule, args)
    section("evaluation", bench_eval, args)
    section("runtime", bench_runtime, args)
    section("levers", bench_levers, cfg, args)
    unet = C.preset("ddpm-unet")
    section("unet_levers", bench_levers, unet, args, unet_levers(args.batch_size or unet.train.batch_size))
    if args.evaluate:
        section("evaluate", bench_evaluate, args)
    flops = train_flops_per_image(cfg)
    achieved = flops * res["training"]["ours_images_per_s"] / 1e9
    res["roofline"] = {"flops_per_image": flops, "achieved_gflops": achieved, "fp32_gflops": fp32,
                       "bf16_gflops": bf16, "fp32_size": args.fp32_size, "bf16_size": args.bf16_size,
                       "fraction_fp32": achieved / fp32, "fraction_bf16": achieved / bf16}
    u_flops, u_rate = train_flops_per_image(unet), res["unet_levers"][0]["images_per_s"]
    res["unet_roofline"] = {"flops_per_image": u_flops, "images_per_s": u_rate, "achieved_gflops": u_flops * u_rate / 1e9,
                            "fraction_fp32": u_flops * u_rate / 1e9 / fp32}
    res["wall_s"], res["load_end"] = time.perf_counter() - t_start, load()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = markdown(res)
    (out / "results.md").write_text("# Performance\n\n" + md)
    if readme is not None:
        block = f"{README_START}\n{md}{README_END}"
        readme.write_text(splice(readme.read_text(), block, README_START, README_END))
        print(f"wrote the performance table of {readme}", file=sys.stderr)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
