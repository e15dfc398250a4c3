"""The bad-input catalog: each case is one line on stderr, exit code 2, no traceback, nothing written.

Most cases run the real CLI entry point in-process (same code path as the console script, minus
the interpreter start-up); a few run it as a separate process to show the user-visible behaviour.
"""

import gzip
import hashlib
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from mnistdiff import cli as cli_mod, config as C, data
from mnistdiff.training import loop as T
from mnistdiff.errors import UserError

from .conftest import cli
from mnistdiff.training import rundir


def run_cli(capsys, *args) -> str:
    """Run `mnistdiff ARGS` in-process; assert the catalog's contract; return the message."""
    try:
        code = cli_mod.main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    # Progress lines of an attempted download may precede it; the error itself is one line.
    err = "".join(line for line in capsys.readouterr().err.splitlines(keepends=True)
                  if not line.startswith("downloading "))
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def snapshot(path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("bad") / "run"
    cfg = C.apply(C.preset("ddpm-default"), dict(subset=64, epochs=1, T=10, batch_size=32, hidden=(8,),
                                                 sample_epochs=()))
    T.train(cfg, run, progress=False)
    return run


@pytest.mark.parametrize("flags, message", [
    (["--beta1", "0"], "must lie in (0, 1)"),
    (["--beta2", "1.5"], "must lie in (0, 1)"),
    (["--beta1", "0.03"], "beta1=0.03 must be smaller than beta2=0.02"),
    (["--T", "0"], "T=0 must be between 1"),
    (["--lr", "0"], "lr=0.0 must be positive"),
    (["--lr=-1e-3"], "must be positive"),
    (["--lr", "nan"], "must be positive"),
    (["--batch-size", "0"], "batch_size=0 must be between 1"),
    (["--batch-size=-5"], "batch_size=-5"),
    (["--hidden", ""], "hidden=(empty) must list channel counts"),
    (["--act", "tanh"], "unknown act 'tanh'; choose one of: gelu, relu, elu, silu"),
    (["--degradation", "warp"], "unknown degradation 'warp'"),
    (["--order", "diagonal"], "unknown order 'diagonal'"),
    (["--group", "5"], "group=5 must divide 28"),
    (["--preset", "nope"], "invalid choice: 'nope'"),
    (["--epochs", "two"], "epochs='two' is not a valid int"),
])
def test_impossible_config_values(capsys, tmp_path, flags, message):
    err = run_cli(capsys, "train", "--run", tmp_path / "run", *flags)
    assert message in err
    assert not (tmp_path / "run").exists()


def test_unknown_keys_in_a_config_file(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nlearning_rate = 0.1\n")
    err = run_cli(capsys, "train", "--config", tmp_path / "c.toml", "--run", tmp_path / "run")
    assert "unknown config key train.learning_rate" in err and not (tmp_path / "run").exists()
    (tmp_path / "c.json").write_text('{"optimizer": {"lr": 1}}')
    assert "unknown config key 'optimizer'" in run_cli(capsys, "train", "--config", tmp_path / "c.json")


def test_unknown_sampler_and_bad_sample_counts(capsys, trained):
    before = snapshot(trained)
    assert "invalid choice: 'euler'" in run_cli(capsys, "sample", trained, "--sampler", "euler")
    for n in ("0", "-3"):
        assert "must lie in [1, 100000]" in run_cli(capsys, "sample", trained, "-n", n)
    assert snapshot(trained) == before


def test_a_checkpoint_from_a_different_configuration(capsys, trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "config.json").write_text(C.apply(C.from_dict(C.load_file(copy / "config.json")),
                                              {"lr": 0.5}).to_json())
    before = snapshot(copy)
    assert "different configuration" in run_cli(capsys, "train", "--resume", copy)
    assert "only --epochs and --precision may be given" in run_cli(capsys, "train", "--resume", copy, "--lr", "0.1")
    assert snapshot(copy) == before


def test_a_run_directory_in_use_is_refused(capsys, trained):
    before = snapshot(trained)
    with rundir.locked(trained):  # as a running training process holds it
        err = run_cli(capsys, "train", "--resume", trained, "--epochs", "2")
    assert "is in use by another training process" in err
    assert {k: v for k, v in snapshot(trained).items() if k.name != ".lock"} == \
        {k: v for k, v in before.items() if k.name != ".lock"}


def test_an_unwritable_output_directory(capsys, tmp_path, trained):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert "cannot write to" in run_cli(capsys, "train", "--run", blocker / "run", "--subset", "64")
    assert "is a file, not a directory" in run_cli(capsys, "sample", trained, "-n", "2", "--out", blocker / "g.png")
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("damage, message", [
    ("missing", "could not download"),
    ("truncated", "truncated"),
    ("magic", "magic number 7"),
    ("count", "holds 5 items"),
    ("checksum", "fails its checksum"),
])
def test_bad_data_files(capsys, tmp_path, data_dir, monkeypatch, damage, message):
    d = tmp_path / "data"
    shutil.copytree(data_dir, d)
    labels = d / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels.read_bytes())
    labels.unlink()
    damaged = {
        "missing": None,
        "truncated": raw[:100],
        "magic": (7).to_bytes(4, "big") + raw[4:],
        "count": raw[:4] + (5).to_bytes(4, "big") + raw[8:],
        "checksum": raw[:-1] + bytes([raw[-1] ^ 1]),
    }[damage]
    if damaged is not None:
        labels.with_suffix("").write_bytes(damaged)
    monkeypatch.setenv("MNISTDIFF_MIRRORS", "http://127.0.0.1:9/")  # a mirror that refuses connections
    err = run_cli(capsys, "train", "--data-dir", d, "--run", tmp_path / "run")
    assert message in err and not (tmp_path / "run").exists()


def test_the_console_script_gives_one_line_too(tmp_path):
    r = cli("train", "--run", tmp_path / "run", "--group", "3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stdout == ""
    assert "group=3 must divide 28" in r.stderr and not (tmp_path / "run").exists()


# -- property tests ------------------------------------------------------------------------------

VALUES = st.one_of(st.integers(-10**9, 10**9).map(str), st.floats(allow_nan=True).map(repr),
                   st.text(max_size=12), st.sampled_from(["", "0", "-1", "1e400", "inf", "nan", "1,2,,3", "x0"]))
FIELDS = st.sampled_from(sorted(C.FIELD_SECTION))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.dictionaries(FIELDS, VALUES, min_size=1, max_size=4))
def test_no_config_value_crashes_or_writes_outside_the_run(overrides, tmp_path_factory, capsys):
    cwd = tmp_path_factory.mktemp("prop")
    try:
        cfg = C.validate(C.apply(C.preset("ddpm-default"), overrides))
    except UserError:
        flags = [x for k, v in overrides.items() for x in (f"--{k.replace('_', '-')}", v)]
        try:
            code = cli_mod.main(["train", "--run", str(cwd / "run"), *flags])
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (overrides, err)
        assert not any(cwd.iterdir())
    else:  # a valid config builds its network and degradation without error (on the meta device: no memory)
        with torch.device("meta"):
            net, process = T.build(cfg)
        assert sum(p.numel() for p in net.parameters()) > 0 and process.T >= 1


@settings(max_examples=300, deadline=None)
@given(magic=st.sampled_from([2049, 2051, 0, 2050, 2**32 - 1]), dims=st.lists(st.integers(0, 70000), max_size=3),
       payload=st.binary(max_size=64), expect_magic=st.sampled_from([2049, 2051]), count=st.integers(0, 3))
def test_idx_headers_never_crash(magic, dims, payload, expect_magic, count):
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload
    try:
        arr = data.parse_idx(raw, magic=expect_magic, count=count)
    except UserError:
        return
    assert arr.shape[0] == count
