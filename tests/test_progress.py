"""Progress (progress.py): a bar in a terminal, plain timed lines in logs (issue 15, item 4)."""

import io

from mnistdiff.progress import Progress

from .conftest import cli, tiny_flags
from mnistdiff.sampling import generate


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_plain_lines_with_rate_and_eta_never_carriage_returns():
    log = io.StringIO()
    p = Progress(10, "epoch 1/2", "step", stream=log, interval=0)
    for _ in range(4):
        p.update(1, loss="0.1")
    p.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in log.getvalue()
    assert lines[-1].startswith("epoch 1/2: 4/10 steps, ") and "steps/s, ETA " in lines[-1] and lines[-1].endswith("loss 0.1")


def test_a_log_gets_at_most_one_line_per_interval():
    log = io.StringIO()
    p = Progress(1000, "sampling", "image", stream=log, interval=3600)
    for _ in range(1000):
        p.update(1)
    assert log.getvalue() == ""


def test_a_terminal_gets_a_redrawn_bar_and_disabled_progress_writes_nothing():
    term = Terminal()
    p = Progress(5, "features", "image", stream=term)
    p.update(5)
    p.close()
    assert "\r" in term.getvalue() and "features:" in term.getvalue()  # tqdm draws (and erases) its bar
    quiet = Terminal()
    p = Progress(5, "x", stream=quiet, enabled=False)
    p.update(5)
    p.close()
    assert quiet.getvalue() == ""


def test_training_into_a_log_writes_no_bar_redraws(tmp_path):
    flags = [f for f in tiny_flags() if f != "--quiet"]
    r = cli("train", "--run", tmp_path / "r", *flags)  # stderr is a pipe here, as in CI or `2> log`
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and len(r.stderr) < 2000, r.stderr
    assert "epoch 2/2: mean loss" in r.stderr


def test_a_long_sampling_batch_still_writes_lines_that_say_where_it_is(monkeypatch):
    # One batch of guided samples can take minutes: the sampler's steps reach the log between batch ends.
    import functools

    import torch

    from mnistdiff import config as C, nets, processes

    cfg = C.apply(C.preset("ddpm-default"), dict(T=6, hidden=(8, 8)))
    net, process = nets.build(cfg.model).eval(), processes.build(cfg.process)
    log = io.StringIO()
    monkeypatch.setattr(generate, "Progress", functools.partial(Progress, stream=log, interval=0))
    with torch.no_grad():
        quiet = generate.generate(net, process, cfg, 4, batch_size=2, sampler="ddpm")
        shown = generate.generate(net, process, cfg, 4, batch_size=2, sampler="ddpm", progress=True)
    lines = log.getvalue().splitlines()
    assert torch.equal(quiet, shown)  # counting steps changes no image
    assert lines[0].startswith("sampling: 0/4 images, ") and lines[0].endswith("batch 1/2, step 1")
    assert lines[-2].startswith("sampling: 2/4 images, ") and lines[-2].endswith("batch 2/2, step 6")
    assert lines[-1].startswith("sampling: 4/4 images, ")
    assert len(lines) == 2 * 6 + 2  # every step of both batches, and each batch's end


def test_a_long_job_says_once_how_long_it_will_take(monkeypatch):
    import io

    from mnistdiff import progress as P

    clock = iter([0.0] + [float(i) for i in range(1, 100)])
    monkeypatch.setattr(P.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    e = P.Estimate(1000, "training", stream=out)
    for _ in range(30):
        e.step()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("training: about 16m") and "985 more steps at 1 s each" in lines[0]
    short = P.Estimate(20, "training", stream=io.StringIO())
    for _ in range(20):
        short.step()
    assert short.stream.getvalue() == ""  # 20 s of work: not worth a line
