import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mnistdiff import cli as cli_mod

from .conftest import cli, main, tiny_flags
from mnistdiff.training import rundir
from mnistdiff.training.checkpoint import store


@pytest.mark.slow
def test_train_interrupt_resume_sample_end_to_end(tmp_path):
    run = tmp_path / "run"
    # 100,000 tiny epochs take hours (500 took ~10 s in bf16 on an AMX CPU, so a busy machine's Ctrl-C came after
    # the end): the Ctrl-C below lands while training, never after it ended.
    args = [sys.executable, "-m", "mnistdiff", "train", "--run", str(run), *tiny_flags(), "--epochs", "100000"]
    # A shell starts background jobs with SIGINT ignored, and Python then installs no Ctrl-C handler:
    # give the child a terminal user's default, so the test runs the same from `make test` or `... &`.
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupt as a user would (Ctrl-C) once the first epoch's checkpoint exists.
    deadline = time.time() + 300
    while not store.checkpoint_path(run, "last").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "interrupted; a training run continues with" in err, err
    done = store.load_latest(run)[1][2]["epoch"]  # epochs in the checkpoint the resume starts from
    assert 1 <= done < 100_000
    r = cli("train", "--resume", run, "--quiet", "--epochs", done + 2)
    assert r.returncode == 0, r.stderr
    epochs = [row["epoch"] for row in rundir.read_metrics(run) if row["type"] == "epoch"]
    assert epochs == list(range(1, done + 3))
    r = cli("sample", run, "-n", "9", "--seed", "3")
    assert r.returncode == 0, r.stderr
    imgs = np.load(run / "samples/sample-ddpm-n9-seed3.npy")
    assert imgs.shape == (9, 28, 28) and imgs.dtype == np.uint8
    # The same seed reproduces the same images, from the checkpoint alone.
    r = cli("sample", run / "checkpoints/last.safetensors", "-n", "9", "--seed", "3", "--out", tmp_path / "again.png")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "again.npy"), imgs)


def test_an_interrupt_surfacing_as_another_exception_still_exits_130(monkeypatch, capsys):
    """Ctrl-C while a C extension initialises raises ImportError caused by the KeyboardInterrupt
    (seen once in CI, in matplotlib's Agg); the CLI still reports an interrupt, not a crash."""
    from mnistdiff import cli as CLI

    def interrupted_import(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e

    monkeypatch.setattr(CLI, "cmd_presets", interrupted_import)
    assert CLI.main(["presets"]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train --resume RUN" in err
    monkeypatch.setattr(CLI, "cmd_presets", lambda args: 1 / 0)  # a real bug still raises
    with pytest.raises(ZeroDivisionError):
        CLI.main(["presets"])


def test_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    r = cli("train", "--run", run, *tiny_flags())
    assert r.returncode == 2 and "already exists" in r.stderr and r.stderr.count("\n") == 1
    assert (run / "precious.txt").read_text() == "keep me" and len(list(run.iterdir())) == 1


def test_sample_refuses_to_overwrite(tmp_path):
    run = tmp_path / "run"
    assert main("train", "--run", run, *tiny_flags(), "--epochs", "1").returncode == 0
    assert main("sample", run, "-n", "4").returncode == 0
    png = run / "samples/sample-ddpm-n4-seed0.png"
    before = png.read_bytes()
    r = main("sample", run, "-n", "4")
    assert r.returncode == 2 and "already exists" in r.stderr
    assert png.read_bytes() == before


def test_help_shows_defaults_and_examples():
    r = main("train", "--help")
    assert r.returncode == 0 and "(default: 0.0002)" in r.stdout and "--resume runs/ddpm" in r.stdout
    r = main("presets", "-v")
    assert "ddpm-testing2" in r.stdout and "T=1500" in r.stdout


def test_preset_ddpm_default_is_table_1_1(tmp_path):
    r = main("train", "--preset", "ddpm-default", "--run", tmp_path / "r", "--subset", "64", "--epochs", "1",
            "--T", "10", "--quiet", "--sample-epochs", "")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "r/config.json").read_text())
    assert cfg["model"] == {"net": "cnn", "hidden": [16, 32, 32, 16], "act": "gelu", "attention": False,
                            "res_blocks": 1}
    assert cfg["process"]["beta1"] == 1e-4 and cfg["process"]["beta2"] == 0.02
    assert cfg["train"]["lr"] == 2e-4 and cfg["train"]["batch_size"] == 128
    assert os.path.exists(tmp_path / "r/checkpoints/best.safetensors")


# -- habits of the command line ----------------------------------------------------------------------

def _main(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli_mod.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    from mnistdiff import __version__

    code, out, _ = _main(capsys, "--version")
    assert code == 0 and out.strip() == f"mnistdiff {__version__}"


@pytest.mark.parametrize("argv, said", [
    (["train", "--preset", "ddpm-unt"], "did you mean 'ddpm-unet'?"),
    (["sampel", "x"], "did you mean 'sample'?"),
    (["sample", "x", "--sampler", "heum"], "did you mean 'heun'?"),
    (["train", "--preset", "zzzzzz"], "choose from ddpm-default, ddpm-testing2"),
])
def test_a_near_miss_is_named(capsys, argv, said):
    code, _, err = _main(capsys, *argv)
    assert code == 2 and said in err and err.count("\n") == 1, err


def test_abbreviated_flags_are_refused(capsys, tmp_path):
    code, _, err = _main(capsys, "train", "--epoch", "1", "--run", tmp_path / "r")
    assert code == 2 and "unrecognized arguments: --epoch 1" in err
    assert not (tmp_path / "r").exists()


def test_a_missing_run_is_named_as_missing(capsys, tmp_path):
    for command in ("sample", "evaluate"):
        code, _, err = _main(capsys, command, tmp_path / "nope")
        assert code == 2 and f"{tmp_path / 'nope'} does not exist" in err, err


def test_sampler_option_help_gives_each_samplers_default(capsys):
    code, out, _ = _main(capsys, "sample", "--help")
    assert code == 0 and "(default: 50 for ddim, 18 for heun, 20 for dpm++2m)" in " ".join(out.split())


def test_output_to_a_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    script = ("import sys; from mnistdiff import cli; sys.stdout = open(sys.stdout.fileno(), 'w', buffering=1, "
              "closefd=False); sys.exit(cli.main(['presets', '-v']))")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()  # as `| head -1` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_finished_training_says_what_to_run_next(capsys, tmp_path):
    code, _, err = _main(capsys, "train", "--run", tmp_path / "r", "--subset", "64", "--epochs", "1", "--T", "10",
                         "--hidden", "8", "--batch-size", "32", "--sample-epochs", "", "--quiet")
    assert code == 0 and f"next: mnistdiff sample {tmp_path / 'r'} -n 64" in err


def test_training_without_a_preset_says_what_it_trains(capsys, tmp_path):
    code, _, err = _main(capsys, "train", "--run", tmp_path / "r", "--subset", "64", "--epochs", "1", "--T", "10",
                         "--hidden", "8", "--batch-size", "32", "--sample-epochs", "", "--quiet")
    assert code == 0 and "no --preset: training ddpm-default" in err and "quick-unet" in err
    code, _, err = _main(capsys, "train", "--preset", "ddpm-default", "--run", tmp_path / "r2", "--subset", "64",
                         "--epochs", "1", "--T", "10", "--hidden", "8", "--batch-size", "32", "--sample-epochs", "",
                         "--quiet")
    assert code == 0 and "no --preset" not in err
