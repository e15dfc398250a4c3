"""Experiment plans: named runs (a preset plus overrides) trained one after another into a runs folder.

A plan is a TOML file (shipped ones live in mnistdiff/plans/):

    description = "what the study is"
    [defaults]                        # overrides applied to every run (optional)
    subset = 6000
    [[run]]
    name = "ddpm-default"             # the run directory: RUNS/<name>
    preset = "ddpm-default"
    overrides = { epochs = 3 }        # flat config keys, as on the command line
    sample = [{ start = "conditional" }, { start = "gmm" }]  # optional: `mnistdiff sample` calls after training
    evaluate = { n = 1000 }           # optional: `mnistdiff evaluate` options after training

Re-running a plan skips finished runs and resumes interrupted ones, so one command both starts
and continues a study. A run directory whose config differs from the plan's is an error: the
plan never silently trains something other than what it says.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import config as C
from .errors import UserError, check_int
from . import files
from .training import rundir
from .training.checkpoint import store

PLAN_KEYS = {"description", "defaults", "run"}
RUN_KEYS = {"name", "preset", "overrides", "sample", "evaluate"}
SAMPLE_KEYS = {"n", "seed", "sampler", "start", "which", "batch_size", "start_options"}
RECORD = "experiment.json"  # per run: which plan made it, on which machine, and how long each session took


@dataclass
class PlannedRun:
    name: str
    preset: str
    config: C.Config
    sample: list[dict] = field(default_factory=list)  # keyword options of sample.sample_run, one call each
    evaluate: dict | None = None  # keyword options for the final evaluation; None: no evaluation

    def stages(self) -> list[tuple[str, dict]]:
        """What follows training, each with a key under which experiment.json records it as done."""
        out = [("sample", opts) for opts in self.sample]
        return out + ([("evaluate", self.evaluate)] if self.evaluate is not None else [])


@dataclass
class Plan:
    name: str
    description: str = ""
    runs: list[PlannedRun] = field(default_factory=list)


def shipped_plans() -> dict[str, Path]:
    folder = resources.files("mnistdiff") / "plans"
    return {p.name.removesuffix(".toml"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def _check_samples(sample, name: str, where: str) -> list[dict]:
    from .processes import starts
    from .sampling import samplers

    if isinstance(sample, dict):
        sample = [sample]
    if not isinstance(sample, list) or not all(isinstance(s, dict) for s in sample):
        raise UserError(f"{where}: sample of run {name!r} must be a list of tables, e.g. [{{ start = \"gmm\" }}]")
    for opts in sample:
        unknown = set(opts) - SAMPLE_KEYS
        if unknown:
            raise UserError(f"{where}: run {name!r}: unknown sample option {sorted(unknown)[0]!r}; "
                            f"valid: {', '.join(sorted(SAMPLE_KEYS))}")
        for key, registry in (("sampler", samplers.SAMPLERS), ("start", starts.STARTS)):
            if key in opts and opts[key] not in registry:
                raise UserError(f"{where}: run {name!r}: unknown {key} {opts[key]!r}; choose one of: "
                                f"{', '.join(registry)}")
        try:
            check_int("sample n", opts.get("n", 64), 1, C.MAX_EVAL, "n = 64")
            check_int("sample seed", opts.get("seed", 0), 0, 2 ** 63 - 1)
            check_int("sample batch_size", opts.get("batch_size", 500), 1, C.MAX_EVAL, "batch_size = 500")
        except UserError as e:
            raise UserError(f"{where}: run {name!r}: {e}") from None
    return sample


def _planned(name, preset, overrides: dict, evaluate, where: str, sample=()) -> PlannedRun:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith(".") \
            or not name.isprintable() or len(name.encode()) > 200:
        raise UserError(f"{where}: run name {name!r} must be a plain directory name of printable characters, "
                        "e.g. name = \"ddpm-default\"")
    if not isinstance(overrides, dict):
        raise UserError(f"{where}: overrides of run {name!r} must be a table of config keys")
    evaluate = _check_evaluate(evaluate, name, where)
    try:
        cfg = C.validate(C.apply(C.preset(preset), overrides))
        if evaluate is not None:  # every option of the stage, before the first run trains
            from .evaluation.evaluate import check_request

            check_request(cfg, **evaluate)
    except UserError as e:
        raise UserError(f"{where}, run {name!r}: {e}") from None
    return PlannedRun(name, preset, cfg, _check_samples(list(sample), name, where), evaluate)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; every run's config is resolved before anything trains."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a FIFO would block
            raise UserError(f"plan {path} is not a regular file")
        d = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read plan {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"plan {path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"plan {path} is not valid TOML: {e}") from None
    unknown = set(d) - PLAN_KEYS
    if unknown:
        raise UserError(f"plan {path}: unknown key {sorted(unknown)[0]!r}; valid keys: {', '.join(sorted(PLAN_KEYS))}")
    defaults, entries = d.get("defaults", {}), d.get("run", [])
    if not isinstance(defaults, dict) or not isinstance(entries, list) or not entries:
        raise UserError(f"plan {path} needs at least one [[run]] table (and [defaults] must be a table)")
    plan = Plan(path.name.removesuffix(".toml"), str(d.get("description", "")))
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UserError(f"plan {path}, run #{i}: each run must be a [[run]] table, not {entry!r:.40}")
        if not isinstance(entry.get("overrides", {}), dict):
            raise UserError(f"plan {path}, run #{i}: overrides must be a table of config keys, e.g. "
                            "overrides = { epochs = 3 }")
        unknown = set(entry) - RUN_KEYS
        if unknown:
            raise UserError(f"plan {path}, run #{i}: unknown key {sorted(unknown)[0]!r}; "
                            f"valid keys: {', '.join(sorted(RUN_KEYS))}")
        if "preset" not in entry:
            raise UserError(f"plan {path}, run #{i}: missing preset = \"...\" (`mnistdiff presets` lists them)")
        name = entry.get("name", entry["preset"])
        plan.runs.append(_planned(name, entry["preset"], {**defaults, **entry.get("overrides", {})},
                                  entry.get("evaluate"), f"plan {path}", entry.get("sample", [])))
    return plan


def resolve(items: list[str]) -> Plan:
    """Plan files, shipped plan names and preset names, in order, as one plan."""
    shipped = shipped_plans()
    plan = Plan(name="+".join(Path(i).name.removesuffix(".toml") for i in items))
    for item in items:
        if item.endswith(".toml") or os.sep in item or Path(item).is_file():
            part = load_plan(item)
        elif item in shipped:
            part = load_plan(shipped[item])
        elif item in C.PRESETS:
            part = Plan(item, runs=[_planned(item, item, {}, None, "command line")])
        else:
            raise UserError(f"{item!r} is neither a plan file, a shipped plan ({', '.join(sorted(shipped))}) "
                            f"nor a preset ({', '.join(C.PRESETS)})")
        plan.description = plan.description or part.description
        plan.runs += part.runs
    names = [r.name for r in plan.runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"run name {dupes[0]!r} appears twice in the plan; give each run its own name")
    return plan


def run_status(run: Path, planned: PlannedRun) -> str:
    """new | finished | resume | restart (made, but killed before its first checkpoint)."""
    if not run.exists() or (run.is_dir() and not any(run.iterdir())):
        return "new"
    if not (run / "config.json").is_file():
        raise UserError(f"{run} exists but is not a run directory (no config.json); move it away or "
                        "choose another --runs folder")
    from .machine import resolve_precision

    saved = C.from_dict(json.loads((run / "config.json").read_text()))
    planned_cfg, _ = resolve_precision(planned.config)  # the run's config.json says what auto chose
    if saved.to_dict() != planned_cfg.to_dict():
        diff = [f"{k}: {v} in the run, {getattr(getattr(planned.config, s), k)} in the plan"
                for s, values in saved.to_dict().items() for k, v in values.items()
                if getattr(getattr(planned_cfg, s), k) != C.parse_value(k, v)]
        raise UserError(f"{run} was trained with another config than the plan's run {planned.name!r} "
                        f"({'; '.join(diff)}); move the directory away or choose another --runs folder")
    if not any(store.checkpoint_path(run, w).exists() for w in ("last", "prev")):
        return "restart"
    _, (_, _, state) = store.load_latest(run, warn=lambda m: print(m, file=sys.stderr))
    return "finished" if state["epoch"] >= planned.config.train.epochs else "resume"


def machine() -> dict:
    """What the run was timed on (no host names: a run directory may be shared)."""
    import torch

    from .machine import cpu_model

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "system": platform.system()}


def _read_record(run: Path) -> dict:
    path = run / RECORD
    return json.loads(path.read_text()) if path.exists() else {"sessions": [], "done": []}


def _record(run: Path, plan: Plan, stage: str, action: str, wall_s: float, *, reset: bool = False) -> None:
    """Append a timed session; `done` lists the finished post-training stages (reset when training ran)."""
    rec = _read_record(run)
    rec["plan"] = plan.name
    rec["sessions"].append({"stage": stage, "action": action, "wall_s": round(wall_s, 2),
                            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine()})
    rec["done"] = [] if reset else rec.get("done", []) + ([stage] if stage != "train" else [])
    files.atomic_write_bytes(run / RECORD, (json.dumps(rec, indent=2) + "\n").encode())


def _stage_key(kind: str, opts: dict) -> str:
    return f"{kind} {json.dumps(opts, sort_keys=True)}"


def run_plan(plan: Plan, runs_dir: str | Path = "runs", *, data_dir=None, progress: bool = True,
             dry_run: bool = False, log=lambda m: print(m, file=sys.stderr)) -> list[tuple[str, str, float]]:
    """Train, sample and evaluate each run of the plan as far as it is not done yet.

    Returns (name, what was done, seconds) per run; every run's state is checked before any work starts.
    """
    from .hooks import epoch_hooks
    from .training.loop import train

    runs_dir = Path(runs_dir)
    todo = [(p, runs_dir / p.name, run_status(runs_dir / p.name, p)) for p in plan.runs]
    done = []
    for i, (planned, run, status) in enumerate(todo, 1):
        head = f"[{i}/{len(todo)}] {planned.name}"
        action = {"new": "training", "resume": "resuming", "restart": "restarting (no checkpoint yet)",
                  "finished": "trained"}[status]
        log(f"{head}: {action} -> {run}")
        t0, did = time.perf_counter(), [] if status == "finished" else [status]
        if not dry_run and status != "finished":
            if status == "restart":
                with rundir.locked(run):  # refuse if a live process still owns it
                    shutil.rmtree(run)
            train(planned.config, run, resume=status == "resume", data_dir=data_dir, progress=progress,
                  hooks=epoch_hooks(planned.config))
            _record(run, plan, "train", status, time.perf_counter() - t0, reset=True)
        finished = _read_record(run)["done"] if run.exists() else []
        for kind, opts in planned.stages():
            key = _stage_key(kind, opts)
            if key in finished:
                continue
            log(f"{head}: {key}")
            did.append(kind)
            if not dry_run:
                t1 = time.perf_counter()
                STAGES[kind](run, opts, data_dir)
                _record(run, plan, key, "done", time.perf_counter() - t1)
        summary = ", ".join(did) or "nothing to do"
        done.append((planned.name, f"would do: {summary}" if dry_run and did else summary, time.perf_counter() - t0))
    return done


def _sample(run: Path, opts: dict, data_dir) -> None:
    from .report.cold import write_for_run
    from .sampling.generate import sample_run

    sample_run(run, data_dir=data_dir, **opts)
    write_for_run(run, data_dir=data_dir, **opts)


def _evaluate(run: Path, opts: dict, data_dir) -> None:
    from .evaluation import evaluate as E

    from .report.figures import write_class_chart

    out, result = E.evaluate_run(run, data_dir=data_dir, **opts)
    write_class_chart(out, result)
    print("\n".join(E.report_lines(result)), file=sys.stderr)


def _check_evaluate(evaluate, name: str, where: str) -> dict | None:
    """Options of evaluate.evaluate_run, checked by name before anything trains."""
    import inspect

    if evaluate is True:
        return {}
    if evaluate is None or evaluate is False:
        return None
    try:
        from .evaluation import evaluate as E
    except ImportError as e:
        raise UserError(f"{where}: run {name!r} asks for evaluate, but evaluation cannot load ({e}); "
                        "remove `evaluate` from the plan, or reinstall mnistdiff with its dependencies (`make venv`)") from None

    if not isinstance(evaluate, dict):
        raise UserError(f"{where}: evaluate of run {name!r} must be true or a table of options, e.g. {{ n = 1000 }}")
    valid = set(inspect.signature(E.evaluate_run).parameters) - {"run", "data_dir"}
    unknown = set(evaluate) - valid
    if unknown:
        raise UserError(f"{where}: run {name!r}: unknown evaluate option {sorted(unknown)[0]!r}; "
                        f"valid: {', '.join(sorted(valid))}")
    return evaluate


STAGES = {"sample": _sample, "evaluate": _evaluate}
