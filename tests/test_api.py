"""The Python API (api.py): the same images as the CLI, the same refusals, lazy import."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import mnistdiff
from mnistdiff import config as C
from mnistdiff.errors import UserError

from .conftest import TINY, cli
from mnistdiff.training.checkpoint import store


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    return mnistdiff.train(C.apply(C.preset("ddpm-default"), TINY), tmp_path_factory.mktemp("api") / "run",
                           progress=False)


def test_sample_gives_the_cli_images_for_the_same_seed(api_run, tmp_path):
    ours = api_run.sample(6, sampler="ddim", steps=5, seed=3)
    r = cli("sample", api_run.path, "-n", "6", "--sampler", "ddim", "--steps", "5", "--seed", "3",
            "--runtime", "torch", "--out", tmp_path / "cli.png")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(ours.numpy(), np.load(tmp_path / "cli.npy"))


def test_load_takes_a_checkpoint_file_and_raw_weights(api_run):

    run = mnistdiff.load(store.checkpoint_path(api_run.path, "best"), weights="raw")
    assert run.path == api_run.path and run.weights == "raw"
    assert run.sample(2, seed=0).dtype == torch.uint8


def test_train_takes_a_dict_config_and_field_overrides(tmp_path):
    run = mnistdiff.train(C.apply(C.Config(), TINY).to_dict(), tmp_path / "d", epochs=1, progress=False)
    assert run.config.train.epochs == 1 and len(run.metrics("epoch")) == 1


@pytest.mark.parametrize("call, match", [
    (lambda r: r.sample(4, digit=7), "trained without labels"),
    (lambda r: r.sample(4, sampler="heun"), "does not serve"),
    (lambda r: r.sample(4, sampler="ddpm", steps=5), "does not take --steps"),
    (lambda r: mnistdiff.load(r.path, checkpoint="newest"), "unknown checkpoint"),
    (lambda r: mnistdiff.load(r.path / "nowhere"), "does not exist"),
    (lambda r: mnistdiff.train(3), "must be a Config"),
    (lambda r: mnistdiff.train("no-such-preset"), "unknown preset"),
    (lambda r: mnistdiff.train("quick", r.path.parent / "x", lr=-1), "lr=-1"),
])
def test_bad_calls_raise_one_line_user_errors(api_run, call, match):
    with pytest.raises(UserError, match=match) as e:
        call(api_run)
    assert "\n" not in str(e.value)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, mnistdiff; assert 'torch' not in sys.modules; mnistdiff.load; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
