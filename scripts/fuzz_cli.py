"""Fuzz the command line: random flag values and randomly damaged run directories, checkpoints and config
files, bounded in time. A case fails on a traceback, an exit code other than 0, 2 and 130, a case that
runs past its time limit, or a file written outside the case's own folder.

    MNISTDIFF_DATA=../shared/data/mnist .venv/bin/python scripts/fuzz_cli.py --seconds 600 --cases 10000

The CLI runs in-process (mnistdiff.cli.main, as the console script calls it, minus 2-3 s of interpreter
and torch start-up per case) with stderr captured; --subprocess N also runs N cases as real processes
and checks that they end as in-process. Training is capped at a few optimizer steps per case, and the
values drawn for sizes are small or invalid, so a case takes milliseconds to a second. Evaluations use
the classifier metrics (the shipped classifier). Prints `cases tried: N, failures: F` and exits 1 if F > 0,
each failure with its argv.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from mnistdiff import files
from mnistdiff.sampling import load
from mnistdiff.training.checkpoint import store

STEP_CAP = 2  # optimizer steps per training case
CASE_LIMIT_S = 60  # a case still running after this is a failure (a hang)

INTS = ["0", "1", "2", "-1", "-7", "3", "10", "1000000000000", str(2 ** 63), str(2 ** 64), "1e3", "1e400", "2.5",
        "x", "", " ", "0x10", "nan", "inf"]
FLOATS = ["0", "0.5", "1", "-1", "1e-300", "1e300", "1e400", "-1e400", "nan", "inf", "-inf", "0.02", "1e-4",
          "x", "", "1,2"]
TEXT = ["", ".", "..", "../../escape", "/", "a/b", "-", "--", "x" * 300, "ünïcode", "a b", "~", "$HOME",
        "/dev/null", "/proc/self/status", "nope"]
CONFIG_FLAGS = {  # small valid values (sizes) beside invalid ones: no case trains or samples for long
    "net": ["cnn", "unet", "rnn", ""], "hidden": ["8", "8,8", "4,8,8", "", "0", "-1", "5000", "a,b", "8,,8", "1e3"],
    "act": ["gelu", "relu", "elu", "silu", "tanh", ""], "attention": ["true", "false", "maybe", "1"],
    "res_blocks": ["1", "2", "0", "9", "x"], "degradation": ["gaussian", "row-averaging", "column-averaging",
                                                               "blur", "warp"],
    "T": ["1", "2", "7", "10", "28", "0", "-5", "100001", "1e400", "nan", "abc"],
    "schedule": ["linear", "cosine", "quadratic"], "beta1": FLOATS, "beta2": FLOATS,
    "prediction": ["eps", "x0", "v", "y"], "loss": ["mse", "l1", "l3"], "min_snr": FLOATS,
    "order": ["random", "outside-in", "inside-out", "diagonal"], "group": ["1", "2", "4", "7", "3", "0", "-4", "29"],
    "order_seed": INTS, "epochs": ["1", "2", "0", "-1", "1000001", "2.5", "x"],
    "batch_size": ["32", "64", "1", "0", "-3", "65537", "x"], "lr": FLOATS, "lr_warmup": INTS,
    "lr_decay": ["constant", "cosine", "linear"], "grad_clip": FLOATS, "ema_decay": FLOATS, "seed": INTS,
    "subset": ["64", "0", "1", "1000000", "60001", "-1", "x"], "sample_epochs": ["", "1", "1,2", "0", "-1", "x,1"],
    "checkpoint_every": ["0", "1", "2", "-1", "x"], "precision": ["fp32", "bf16", "fp8"],
    "threads": ["0", "1", "-1", "x"], "channels_last": ["true", "false", "x"],
    "adam": ["for-loop", "foreach", "fused", "sgd"], "compile": ["false", "x"],
    "eval_every": ["0", "1", "-1", "x"], "n_eval": ["10", "12", "9", "0", "-1", "x"],
    "eval_metrics": ["classifier", "none"], "eval_ref": ["10", "20", "9", "10001", "-1", "x"],
}
TINY = ["--subset", "64", "--epochs", "1", "--T", "10", "--hidden", "8", "--batch-size", "32", "--sample-epochs", "",
        "--eval-metrics", "classifier", "--eval-ref", "10", "--n-eval", "10", "--quiet"]
SAMPLING_FLAGS = {
    "--seed": INTS, "--checkpoint": ["last", "best", "prev", "next", ""], "--sampler": ["ddpm", "ddim", "cold", "x"],
    "--algorithm": ["direct", "1", "2", "3"], "--start": ["normal", "gmm", "uniform", "conditional", "x"],
    "--steps": INTS, "--eta": FLOATS, "--weights": ["ema", "raw", "x"],
}
SAMPLE_FLAGS = {**SAMPLING_FLAGS, "-n": ["1", "2", "4", "0", "-1", "100001", "1000000000000", "x"],
                "--components": ["1", "3", "0", "-1", "x"], "--start-noise": FLOATS,
                "--batch-size": ["1", "2", "500", "0", "-1", "x"], "--out": TEXT + ["out.png", "o/x.png", "x.txt"]}
EVALUATE_FLAGS = {**SAMPLING_FLAGS, "-n": ["10", "12", "9", "0", "100001", "1000000000000", "x"],
                  "--split": ["test", "train", "val"], "--n-ref": ["10", "20", "1", "0", "10001", "60001", "x"],
                  "--name": TEXT + ["ok"], "--batch-size": ["64", "1", "0", "-1", "x"], "--real-rows": None,
                  "--inception-weights": TEXT, "--inception-logits": TEXT}


# -- damage ---------------------------------------------------------------------------------------

def damage_run(run: Path, rng: random.Random) -> str:
    """Apply one random damage to a copy of a run directory; returns its description."""
    from mnistdiff.training import checkpoint

    slot = store.checkpoint_path(run, rng.choice(["last", "prev", "best", "next"]))
    kind = rng.choice(["flip", "truncate", "random", "empty", "directory", "fifo", "dangling", "rehash",
                       "config.json", "metrics", "degradation", "no-checkpoints", "stale-tmp", "samples-file",
                       "eval-file", "none"])

    def remove(p):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()

    if kind in ("flip", "truncate") and slot.is_file():
        raw = bytearray(slot.read_bytes())
        if kind == "flip":
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(raw)) if rng.random() < 0.5 else rng.randrange(min(len(raw), 4096))
                raw[i] ^= rng.randint(1, 255)
        else:
            raw = raw[:rng.randrange(len(raw))]
        slot.write_bytes(bytes(raw))
    elif kind == "random":
        remove(slot)  # an earlier damage may have left a FIFO there: writing to it would block
        slot.write_bytes(rng.randbytes(rng.randint(1, 5000)))
    elif kind == "empty":
        remove(slot)
        slot.write_bytes(b"")
    elif kind == "directory":
        remove(slot)
        slot.mkdir()
    elif kind == "fifo":
        remove(slot)
        os.mkfifo(slot)
    elif kind == "dangling":
        remove(slot)
        slot.symlink_to(run / "nowhere")
    elif kind == "rehash" and slot.is_file():
        try:
            tensors, config, state = checkpoint.load(slot)
        except checkpoint.CorruptCheckpoint:  # damaged by an earlier step of this case
            return "rehash (skipped)"
        what = rng.choice(["nan", "state", "config", "drop", "optim"])
        if what == "nan":
            name = rng.choice(sorted(tensors))
            if tensors[name].is_floating_point() and tensors[name].numel():
                tensors[name].view(-1)[rng.randrange(tensors[name].numel())] = rng.choice(
                    [float("nan"), float("inf"), -float("inf")])
        elif what == "state":
            key = rng.choice(sorted(state))
            state[key] = json.loads(rng.choice(['-1', '"x"', 'null', '1e308', '[]', '{}', 'true', '2.5']))
        elif what == "config":
            section = rng.choice(sorted(config))
            key = rng.choice(sorted(config[section]))
            config[section][key] = json.loads(rng.choice(['-1', '"x"', 'null', '1e308', '[]', '0', '7', '"unet"']))
        elif what == "drop":
            tensors.pop(rng.choice(sorted(tensors)))
        else:
            state["optimizer"]["param_groups"][0][rng.choice(["lr", "betas", "eps", "params"])] = rng.choice(
                [None, -1, "x", [1], float("inf")])
        checkpoint.save(slot, tensors=tensors, config=config, state=state)
    elif kind == "config.json":
        p = run / "config.json"
        choice = rng.choice(["garbage", "json", "delete", "directory", "fifo", "mutate"])
        if choice == "mutate" and p.is_file():  # not a FIFO an earlier damage made: reading it would block
            d = json.loads(p.read_text())
            section = rng.choice(sorted(d))
            d[section][rng.choice(sorted(d[section]) + ["unknown"])] = rng.choice([-1, "x", None, 1e308, [], 7])
            p.write_text(json.dumps(d))
        elif choice != "mutate":
            remove(p)
            if choice == "garbage":
                p.write_bytes(rng.randbytes(100))
            elif choice == "json":
                p.write_text(rng.choice(["[]", "{}", "null", '{"model": 1}', "{", '{"train": {"lr": "x"}}']))
            elif choice == "directory":
                p.mkdir()
            elif choice == "fifo":
                os.mkfifo(p)
    elif kind == "metrics":
        p = run / "metrics.jsonl"
        choice = rng.choice(["garbage", "line", "truncate", "delete", "directory", "types"])
        if choice in ("delete", "directory"):
            remove(p)
            if choice == "directory":
                p.mkdir()
        elif choice == "garbage":
            p.write_bytes(rng.randbytes(200))
        elif choice == "line":
            with open(p, "a") as f:
                f.write(rng.choice(["{", "[]", "null", '{"step": "x"}', '{"type": "epoch"}', "7"]) + "\n")
        elif choice == "truncate":
            raw = p.read_bytes()
            p.write_bytes(raw[:rng.randrange(max(1, len(raw)))])
        else:
            p.write_text('{"type": "epoch", "epoch": "x", "step": null, "loss_mean": "y"}\n')
    elif kind == "degradation":
        p = run / "degradation.json"
        remove(p)
        if rng.random() < 0.7:
            p.write_text(rng.choice(["{", "[]", '{"order": "x"}', "null"]))
    elif kind == "no-checkpoints":
        remove(run / store.CKPT_DIR)
        if rng.random() < 0.5:
            (run / store.CKPT_DIR).write_text("a file")
    elif kind == "stale-tmp":
        stale = run / store.CKPT_DIR / f".last.safetensors{files.TMP_TAG}{rng.randint(2, 10 ** 6)}"
        stale.write_bytes(b"0" * 100)
    elif kind in ("samples-file", "eval-file"):
        p = run / kind.split("-")[0]
        remove(p)
        p.write_text("a file")
    on_slot = ("flip", "truncate", "random", "empty", "directory", "fifo", "dangling", "rehash")
    return f"{kind} {slot.name}" if kind in on_slot else kind


def damage_cache(cache: Path, rng: random.Random) -> str:
    """One random damage to a copy of a cache folder (its runtime probes)."""
    entries = sorted(p for p in cache.rglob("*") if p.is_file())
    if not entries:
        return "cache (empty)"
    entry = rng.choice(entries)
    kind = rng.choice(["fifo", "directory", "garbage", "json", "truncate", "delete", "dangling", "empty"])
    entry.unlink()
    if kind == "fifo":
        os.mkfifo(entry)
    elif kind == "directory":
        entry.mkdir()
    elif kind == "garbage":
        entry.write_bytes(rng.randbytes(rng.randint(1, 500)))
    elif kind == "json":
        entry.write_text(rng.choice(["[]", "null", "{}", '{"choice": 7}', '{"choice": "x"}', "7", '"torch"']))
    elif kind == "dangling":
        entry.symlink_to(cache / "nowhere")
    elif kind == "empty":
        entry.write_bytes(b"")
    return f"cache {kind} {entry.relative_to(cache)}"


PLAN_RUNS = ["preset = 'quick'", "preset = 'cold-row-random-g4'", "preset = 'nope'", "name = 'x'",
             "preset = 'quick'\nname = 'a\\u0000b'", "preset = 'quick'\nname = '../up'",
             "preset = 'quick'\nname = '.hidden'", "preset = 'quick'\nname = '" + "x" * 300 + "'",
             "preset = 'quick'\nname = 'ünï'", "preset = 'quick'\noverrides = { epochs = -1 }",
             "preset = 'quick'\noverrides = { threads = 1000000 }", "preset = 'quick'\noverrides = 7"]
PLAN_STAGES = ["", "evaluate = true", "evaluate = { n = 1e12 }", "evaluate = { n = 1000000000000 }",
               "evaluate = { name = '../../x' }", "evaluate = { sampler = 'x' }", "evaluate = { sampler = 'heun' }",
               "evaluate = { digit = '1,,2' }", "evaluate = { seed = -1 }", "evaluate = { batch_size = 0 }",
               "evaluate = { n_ref = 10001 }", "evaluate = { bogus = 1 }", "evaluate = 'x'", "sample = [{ n = 0 }]",
               "sample = [{ n = 4, start = 'x' }]", "sample = [{ seed = 2.5 }]", "sample = 'x'", "sample = [7]"]


def plan_text(rng: random.Random, dry_run: bool) -> bytes:
    """A random, often damaged, experiment plan (for a real run, none whose evaluation would take hours)."""
    kind = rng.choice(["runs", "runs", "runs", "garbage", "latin-1", "empty", "keys"])
    if kind == "garbage":
        return rng.randbytes(rng.randint(1, 300))
    if kind == "empty":
        return b""
    if kind == "keys":
        return rng.choice([b"x = 1\n", b"[defaults]\nlr = 'x'\n[[run]]\npreset = 'quick'\n", b"run = 7\n",
                           b"run = [7]\n",
                           b"[[run]]\n[[run]]\n", b"defaults = 3\n[[run]]\npreset = 'quick'\n"])
    stages = PLAN_STAGES if dry_run else [s for s in PLAN_STAGES if s != "evaluate = true"]
    text = "".join(f"[[run]]\n{rng.choice(PLAN_RUNS)}\n{rng.choice(stages)}\n"
                   for _ in range(rng.randint(1, 3)))
    return text.encode("latin-1" if kind == "latin-1" else "utf-8", errors="replace") + \
        (b"caf\xe9 = 1\n" if kind == "latin-1" else b"")


# -- cases ----------------------------------------------------------------------------------------

def _damage(run: Path, rng: random.Random) -> str:
    try:
        return damage_run(run, rng)
    except (OSError, ValueError) as e:  # a second damage the first made impossible (a folder now a file, ...)
        return f"(skipped: {getattr(e, 'strerror', None) or e})"


def _flags(rng: random.Random, table: dict, k: int) -> list[str]:
    """k random flags of the table, each as --flag=VALUE (a value may start with '-')."""
    return [flag if table[flag] is None else f"{flag}={rng.choice(table[flag])}"
            for flag in rng.sample(sorted(table), min(k, len(table)))]


def make_case(rng: random.Random, refs: dict[str, Path], case_dir: Path) -> tuple[list[str], str]:
    """(argv, description) of one random case, its files made under case_dir; argv's paths are relative
    to case_dir, where the case runs."""
    kind = rng.choices(["train", "resume", "sample", "evaluate", "report", "cache", "plan", "other"],
                       [10, 8, 30, 9, 1, 4, 8, 30])[0]
    what = ""
    run = case_dir / "run"
    if kind in ("resume", "sample", "evaluate", "report", "cache"):
        ref = rng.choice(sorted(set(refs) - {"cache"}))
        shutil.copytree(refs[ref], run, symlinks=True)
        what = ref + ": " + "; ".join(_damage(run, rng) for _ in range(rng.choice([0, 1, 1, 1, 2])))
    k = rng.choice([0, 1, 1, 2, 3])
    config_flags = {f"--{n.replace('_', '-')}": v for n, v in CONFIG_FLAGS.items()}
    if kind == "train":
        argv = ["train", "--run", "run", *TINY, *_flags(rng, config_flags, k)]
        if rng.random() < 0.1:
            argv += [rng.choice(["--preset", "--config"]), rng.choice(["quick", "nope", "c.toml"])]
            (case_dir / "c.toml").write_text(rng.choice(["[train]\nlr = 1e-3\n", "[train]\nlr = 'x'\n", "x = [",
                                                         "[model]\nhidden = [8]\n", "[train]\nsubset = 64\n"]))
    elif kind == "resume":
        argv = ["train", "--resume", "run", "--quiet"]
        if rng.random() < 0.7:
            argv.append(f"--epochs={rng.choice(CONFIG_FLAGS['epochs'])}")
        if rng.random() < 0.1:
            argv += _flags(rng, config_flags, 1)
    elif kind == "sample":
        target = "run" if rng.random() < 0.8 else f"run/checkpoints/{rng.choice(['last', 'best', 'x'])}.safetensors"
        flags = _flags(rng, SAMPLE_FLAGS, k)
        if not any(f.startswith("-n=") for f in flags):
            flags.append("-n=2")
        argv = ["sample", target, *flags]
    elif kind == "evaluate":
        flags = _flags(rng, EVALUATE_FLAGS, k)
        for flag, default in (("-n", "10"), ("--n-ref", "20")):
            if not any(f.startswith(flag + "=") for f in flags):
                flags.append(f"{flag}={default}")
        argv = ["evaluate", "run", "--metrics", "classifier", "--quiet", *flags]
    elif kind == "cache":  # a damaged copy of the cache: this machine's runtime probes
        shutil.copytree(refs["cache"], case_dir / "cache", symlinks=True)
        what += "; " + "; ".join(damage_cache(case_dir / "cache", rng) for _ in range(rng.choice([1, 1, 2])))
        argv = ["evaluate", "run", "--metrics", "classifier", "--quiet", "-n=10", "--n-ref=20", "--cache-dir=cache",
                f"--runtime={rng.choice(['auto', 'auto', 'torch'])}", f"--seed={rng.randint(0, 9)}"]
    elif kind == "plan":
        dry_run = rng.random() < 0.8  # a real run trains a few capped steps, then runs what the plan asks after it
        (case_dir / "p.toml").write_bytes(plan_text(rng, dry_run))
        argv = ["experiment", "p.toml", "--runs", "runs", "--quiet"] + (["--dry-run"] if dry_run else [])
        what = (case_dir / "p.toml").read_bytes()[:200].decode("utf-8", "replace")
    elif kind == "report":
        argv = ["report", "run", "-o", rng.choice(["out", "run", "out/x", "run/samples"])]
        if rng.random() < 0.3:
            argv.append(f"--grid-epochs={rng.choice(INTS)}")
    else:
        argv = rng.choice([
            lambda: ["presets", *rng.sample(["-v", "--verbose", "x"], rng.randint(0, 1))],
            lambda: ["experiment", rng.choice(["nope", "quick", "p.toml"]), "--dry-run", "--runs", "runs"],
            lambda: [rng.choice(["train", "sample", "evaluate", "report", "fid", "x", ""]),
                     *[rng.choice(TEXT + INTS + ["--run", "--resume", "-n", "--help-me"])
                       for _ in range(rng.randint(0, 4))]],
            lambda: _fid_case(rng, case_dir),
        ])()
        (case_dir / "p.toml").write_text(rng.choice(["[[run]]\npreset = 'quick'\n", "x", "[[run]]\npreset = 'nope'\n"]))
    return argv, f"{kind} {what}".strip()


SETS = ["a.npy", "f.npy", "pngs", "mnist-test:10", "mnist-train:5", "mnist-test:1", "mnist-val", "nope.npy", "p.toml",
        "."]


def _fid_case(rng: random.Random, case_dir: Path) -> list[str]:
    """`mnistdiff fid A B` on sets of every kind, some damaged (classifier metrics: no Inception)."""
    import numpy as np

    shape = rng.choice([(12, 28, 28), (12, 1, 28, 28), (0, 28, 28), (3, 32, 32), (28, 28), (1, 28, 28)])
    np.save(case_dir / "a.npy", rng.choice([np.zeros(shape, np.uint8), np.full(shape, 0.5, np.float32),
                                             np.full(shape, np.nan, np.float32), np.zeros(shape, np.int64)]))
    (case_dir / "f.npy").write_bytes(rng.choice([b"", b"\x93NUMPY", rng.randbytes(64)]))
    (case_dir / "pngs").mkdir()
    from PIL import Image

    for i in range(rng.choice([0, 1, 3])):
        Image.new("L", rng.choice([(28, 28), (28, 28), (10, 10)])).save(case_dir / "pngs" / f"{i}.png")
    if rng.random() < 0.2:
        (case_dir / "pngs" / "bad.png").write_bytes(rng.randbytes(30))
    argv = ["fid", rng.choice(SETS), rng.choice(SETS), "--metrics", "classifier", "--quiet"]
    if rng.random() < 0.5:
        argv.append(f"--range={rng.choice(['0,1', '-1,1', '1,0', 'x', '0', 'nan,1', '0,inf'])}")
    if rng.random() < 0.2:
        argv.append(f"--json={rng.choice(['out.json', 'pngs', 'p.toml', 'pngs/x.json', 'nowhere/x.json', ''])}")
    return argv


class Hang(BaseException):
    """Raised by SIGALRM in a case past its limit; recorded through HUNG, whatever catches it on the way."""


HUNG = []


def _alarm(signum, frame):
    HUNG.append(True)
    raise Hang(f"still running after {CASE_LIMIT_S} s")


def run_in_process(argv: list[str], cwd: Path) -> tuple[int, str]:
    from mnistdiff import cli

    err = io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    signal.alarm(CASE_LIMIT_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            except BaseException:  # noqa: BLE001 - anything escaping main is what a user sees as a traceback
                traceback.print_exc(file=err)
                code = 1
    finally:
        signal.alarm(0)
        os.chdir(old)
    return code, err.getvalue()


def run_as_process(argv: list[str], cwd: Path) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "mnistdiff", *argv], cwd=cwd, capture_output=True, text=True,
                       timeout=CASE_LIMIT_S * 3)
    return r.returncode, r.stderr


def _copy_keeping_fifos(src: str, dst: str) -> None:
    """shutil.copytree's file copy, with a FIFO (a damage) made anew instead of read (which would block)."""
    if stat.S_ISFIFO(os.lstat(src).st_mode):
        os.mkfifo(dst)
    else:
        shutil.copy2(src, dst)


def _listing(*folders: Path) -> set:
    return {p for folder in folders for p in folder.iterdir()}


def cap_training() -> None:
    """Every training case stops after STEP_CAP optimizer steps (in-process: wraps train.train)."""
    from mnistdiff.training import loop as train

    original = train.train

    def capped(*args, **kwargs):
        kwargs["stop_after_steps"] = min(kwargs.get("stop_after_steps") or STEP_CAP, STEP_CAP)
        return original(*args, **kwargs)

    train.train = capped


def quick_figures() -> None:
    """Figures saved to a path are written as empty files (drawing one costs 0.1-1 s; input handling is
    what is fuzzed here); figures rendered into memory (the report's) are drawn for real."""
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        if hasattr(fname, "write"):
            return original(self, fname, *args, **kwargs)
        with open(fname, "wb"):
            pass
        plt.close(self)

    Figure.savefig = savefig


def make_references(root: Path) -> dict[str, Path]:
    """Two tiny finished runs (DDPM with EMA, cold rows): the material every damaged case starts from."""
    from mnistdiff import config as C
    from mnistdiff.training import loop as train

    refs = {"ddpm": root / "ref-ddpm", "cold": root / "ref-cold"}
    tiny = dict(subset=64, epochs=2, T=10, batch_size=32, hidden=(8,), sample_epochs=(1,), checkpoint_every=1)
    train.train(C.apply(C.preset("ddpm-default"), dict(tiny, ema_decay=0.9)), refs["ddpm"], progress=False)
    train.train(C.apply(C.preset("cold-row-random-g4"), dict(tiny, T=7)), refs["cold"], progress=False)
    # The cache a case may damage: the runtime probes of both reference nets (the classifier is shipped).
    cache = root / "ref-cache"
    for ref in refs.values():
        load.load_trained(ref, runtime="auto", cache=cache, batch_size=10)
    refs["cache"] = cache
    return refs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120, help="stop after this long (default: 120)")
    p.add_argument("--cases", type=int, default=0, help="stop after this many cases (default: 0, no limit)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the cases (default: 0)")
    p.add_argument("--subprocess", type=int, default=0, help="also run the first N cases (training apart) "
                   "as real processes, which must end alike (default: 0)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    p.add_argument("--real-figures", action="store_true", help="draw every figure (slower; default: figures "
                   "saved to files are written empty)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    root = Path(tempfile.mkdtemp(prefix="mnistdiff-fuzz-"))
    work = root / "a" / "b"  # cases run two levels down: a ../../ path that escapes its case shows in root
    work.mkdir(parents=True)
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    refs = make_references(root)
    cap_training()
    if not args.real_figures:
        quick_figures()
    setup_s = time.perf_counter() - t0
    cases, failures, codes, matched, ran_twice = 0, [], {}, 0, 0
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline and (not args.cases or cases < args.cases):
        cases += 1
        case_dir = work / f"case-{cases}"
        case_dir.mkdir()
        argv, what = make_case(rng, refs, case_dir)
        twin = case_dir.with_name(case_dir.name + "-sub")
        if ran_twice < args.subprocess and argv[0] != "train":  # the same files, for a real process afterwards
            shutil.copytree(case_dir, twin, symlinks=True, copy_function=_copy_keeping_fifos)
        before, top = _listing(root, root / "a", work) - {twin}, _listing(case_dir)
        HUNG.clear()
        try:
            code, err = run_in_process(argv, case_dir)
        except Hang as e:
            code, err = 1, f"{e}"
        problems = ["hang: " + err[-200:]] if HUNG else []
        if code not in (0, 2, 130):
            problems.append(f"exit {code}")
        if "Traceback" in err:
            problems.append("traceback")
        if code == 2 and sum("error:" in line for line in err.splitlines()) != 1:
            problems.append("not one error line")
        if _listing(root, root / "a", work) - {twin} != before:
            problems.append(f"wrote outside its folder: {sorted(map(str, _listing(root, root / 'a', work) - before))}")
        if (argv[:1] == ["evaluate"] or argv[:2] == ["train", "--resume"]) and _listing(case_dir) != top:
            problems.append(f"wrote outside the run: {sorted(map(str, _listing(case_dir) - top))}")
        if twin.exists() and not problems:
            started = time.perf_counter()
            sub_code, sub_err = run_as_process(argv, twin)
            deadline += time.perf_counter() - started  # --seconds bounds the in-process cases only
            ran_twice += 1
            matched += sub_code == code
            if sub_code != code or "Traceback" in sub_err:
                problems.append(f"as a process: exit {sub_code} (in-process {code}): {sub_err[-500:]}")
        codes[code] = codes.get(code, 0) + 1
        if problems:
            failures.append((argv, what, problems, err[-3000:]))
            print(f"FAIL case {cases} ({what}): {', '.join(problems)}\n  argv: {argv}\n  {err.strip()[-1500:]}",
                  file=sys.stderr)
        shutil.rmtree(case_dir, ignore_errors=True)
        shutil.rmtree(twin, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    print(f"cases tried: {cases}, failures: {len(failures)} (exit codes {dict(sorted(codes.items()))}; "
          f"{matched} of {ran_twice} run again as real processes ended the same; "
          f"seed {args.seed}, {elapsed:.0f} s with {setup_s:.0f} s of set-up)")
    if args.keep:
        print(f"work folder: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
