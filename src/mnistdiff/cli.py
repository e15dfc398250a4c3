"""The command line: each subcommand parses, calls the library, and returns an exit code."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

from . import config as C
from .cli_parser import build_parser
from .errors import UserError
from .training import rundir

def _overrides(args) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}


def cmd_train(args) -> int:
    from .training import loop as T

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
    from .hooks import epoch_hooks

    state = T.train(cfg, run, resume=bool(args.resume), data_dir=args.data_dir, progress=not args.quiet,
                    hooks=epoch_hooks(cfg), note=note)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: once, not once per process
        print(f"trained {run}: epoch {state.epoch}, step {state.step}", file=sys.stderr)
        if state.epoch == cfg.train.epochs:
            print(f"next: mnistdiff sample {run} -n 64   |   mnistdiff evaluate {run} -n 1000   |   "
                  f"mnistdiff report {run} -o report", file=sys.stderr)
        if args.sample_after and state.epoch == cfg.train.epochs:
            from .report.cold import write_for_run
            from .sampling.generate import sample_run

            sample_run(run, n=64, seed=cfg.train.seed, data_dir=args.data_dir)
            write_for_run(run, seed=cfg.train.seed, data_dir=args.data_dir)
    return 0


def _sampler(args) -> str | None:
    """The sampler --sampler or --algorithm names (None: the process's default)."""
    from .sampling.samplers import cold_sampler

    if args.algorithm and args.sampler:
        raise UserError("give --algorithm (cold runs) or --sampler, not both")
    return cold_sampler(args.algorithm) if args.algorithm else args.sampler


def _sampler_options(args) -> dict:
    """Every sampler option flag, None where not given (generate() drops those)."""
    from .sampling.samplers import option_names

    return {name: getattr(args, name) for name in option_names()}


def _steps(text: str | None, trajectory: str | None) -> list[int] | None:
    """--trajectory-steps 1000,500,1 -> [1000, 500, 1]."""
    if text is None:
        return None
    if trajectory is None:
        raise UserError("--trajectory-steps chooses the steps of --trajectory FILE; pass that too")
    try:
        steps = [int(k) for k in text.split(",")]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise UserError(f"--trajectory-steps {text!r} must be whole steps k >= 1 separated by commas, e.g. 1000,500,1")
    return steps


def cmd_sample(args) -> int:
    from .report.cold import write_for_run
    from .sampling.generate import sample_run

    opts = dict(n=args.n, seed=args.seed, which=args.checkpoint, sampler=_sampler(args), start=args.start,
                data_dir=args.data_dir, start_options={"components": args.components, "noise": args.start_noise},
                weights=args.weights, precision=args.precision)
    sample_run(args.run, out=args.out, batch_size=args.batch_size, sampler_options=_sampler_options(args),
               runtime=args.runtime, digit=args.digit, guidance=args.guidance, trajectory=args.trajectory,
               trajectory_steps=_steps(args.trajectory_steps, args.trajectory), **opts)
    write_for_run(args.run, **opts)
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate as E
    from .evaluation.epochs import evaluate_snapshots
    from .report.figures import write_class_chart

    if args.snapshots:
        given = {"--name": args.name, "--digit": args.digit, "--guidance": args.guidance, "--sampler": _sampler(args),
                 "--start": args.start, "--seed": args.seed, "--checkpoint": args.checkpoint != "last",
                 "--real-rows": args.real_rows, "--memorisation": args.memorisation, "--split": args.split != "test",
                 "--sample-batch-size": args.sample_batch_size != 500,
                 **{f"--{k}": v is not None for k, v in _sampler_options(args).items()}}
        extra = [flag for flag, value in given.items() if value]
        if extra:
            raise UserError(f"--snapshots scores each snapshot as training would, with the run's own sampler, start and "
                            f"seed; {extra[0]} does not apply to it")
        epochs = set(C.parse_value("sample_epochs", args.snapshot_epochs)) if args.snapshot_epochs else None
        rows = evaluate_snapshots(args.run, n=args.n, metrics=args.metrics if args.metrics != "all" else None,
                                  n_ref=args.n_ref, epochs=epochs, cache=args.cache_dir, data_dir=args.data_dir,
                                  progress=not args.quiet, runtime=args.runtime, batch_size=args.batch_size,
                                  precision=args.precision)
        print(f"evaluated {len(rows)} snapshot(s) of {args.run} into {Path(args.run) / 'eval' / rundir.EPOCH_EVALS}",
              file=sys.stderr)
        return 0
    out, result = E.evaluate_run(
        args.run, n=args.n or 10_000, seed=args.seed, which=args.checkpoint, sampler=_sampler(args), start=args.start,
        split=args.split, n_ref=args.n_ref or 10_000, metrics=args.metrics, real_rows=args.real_rows, name=args.name,
        batch_size=args.batch_size, sample_batch_size=args.sample_batch_size, cache=args.cache_dir,
        inception_weights=args.inception_weights, inception_logits=args.inception_logits, data_dir=args.data_dir,
        progress=not args.quiet, sampler_options=_sampler_options(args), weights=args.weights, runtime=args.runtime,
        digit=args.digit, guidance=args.guidance, precision=args.precision, memorisation=args.memorisation)
    write_class_chart(out, result)
    print("\n".join(E.report_lines(result)))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_fid(args) -> int:
    from .evaluation.compare import fid

    if args.json is not None:  # refused before any work, never overwritten
        out = Path(args.json)
        if out.suffix != ".json":
            raise UserError(f"--json {args.json!r} must name a .json file")
        if out.exists() or out.is_symlink():
            raise UserError(f"{out} already exists; pass another --json (nothing was overwritten)")
        rundir.ensure_writable(out.parent)
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
        from .files import atomic_write_bytes

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
    print(f"wrote {write_report(args.runs, args.out, grid_epochs=epochs, data_dir=args.data_dir)}", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    from .sampling import shipped

    if args.name is not None:
        name = shipped.resolve(shipped.PREFIX + args.name)
        print(json.dumps(shipped.card(name), indent=2))
        return 0
    if not shipped.names():
        print("no shipped models are installed with this copy of mnistdiff")
    for name in shipped.names():
        card = shipped.card(name)
        print(f"{name}\n  {card['description']}")
        m = card.get("measured")
        if m:
            print(f"  FID {m['fid']:.2f} ({m['n']:,} samples vs {m['n_ref']:,} test digits), KID {m['kid']:.4f} +- "
                  f"{m['kid_std']:.4f}, classifier IS {m['classifier_is']:.2f} ({m['n']:,} samples), copy rate "
                  f"{100 * m['copy_rate_pixel']:.1f}% (pixels) / {100 * m['copy_rate_classifier']:.1f}% (classifier "
                  f"features); `mnistdiff models {name}` says how")
        print(f"  {card['sample']}")
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


def commands() -> dict:
    """Subcommand -> function, looked up when main runs."""
    return {name.removeprefix("cmd_"): fn for name, fn in globals().items() if name.startswith("cmd_")}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(commands())
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
    print("mnistdiff: interrupted; a training run continues with `mnistdiff train --resume RUN`, an evaluation "
          "with the same command again", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
