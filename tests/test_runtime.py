"""Inference runtimes (runtime.py): OpenVINO agrees with torch, `auto` probes once, failures fall back."""

import json
import sys

import pytest
import torch

from mnistdiff import config as C, nets, processes
from mnistdiff.sampling import runtime as RT
from mnistdiff.sampling.load import NullLabelDefault
from mnistdiff.sampling.generate import generate
from mnistdiff.evaluation import features


def test_inception_features_agree_with_torch_within_1e5(tmp_path):
    images = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ref = features.InceptionFeatures(runtime="torch", batch_size=6)
    ov = features.InceptionFeatures(runtime="openvino", batch_size=6)
    assert ov.runtime == "openvino" and ref.runtime == "torch"
    with torch.inference_mode():
        a, b = ref(images), ov(images)
    assert a.shape == b.shape == (6, 2048)
    assert ((a - b).norm() / a.norm()).item() < 1e-5


def _unet():
    torch.manual_seed(0)
    cfg = C.apply(C.preset("ddpm-unet"), {"hidden": (8, 16), "T": 50})
    net = nets.build(cfg.model).eval()
    with torch.no_grad():  # the last conv starts at zero; give the net a non-trivial output
        for p in net.out.parameters():
            p.normal_(0, 0.05)
    return cfg, net


def test_unet_samples_agree_with_torch_from_the_same_noise():
    cfg, net = _unet()
    example = (torch.zeros(16, 1, 28, 28), torch.zeros(16))
    compiled = RT.prepare(net, example, "openvino", name="test-unet")
    assert isinstance(compiled, RT.OpenVINOModule)
    process = processes.build(cfg.process)
    kw = dict(seed=3, sampler="ddim", sampler_options={"steps": 10})
    a = generate(net, process, cfg, 16, **kw)
    b = generate(compiled, process, cfg, 16, **kw)
    assert a.float().std() > 5  # the images are not blank, so agreement means something
    assert (a == b).float().mean().item() >= 0.999


def test_auto_probes_once_and_remembers_the_choice(tmp_path, capsys):
    _, net = _unet()
    example = (torch.zeros(4, 1, 28, 28), torch.zeros(4))
    first = RT.prepare(net, example, "auto", name="test-unet", cache_dir=tmp_path)
    said = capsys.readouterr().err
    assert "runtime auto for test-unet" in said
    (record,) = (tmp_path / "runtime").glob("test-unet-*.json")
    saved = json.loads(record.read_text())
    assert saved["choice"] in ("torch", "openvino") and set(saved["seconds"]) == {"torch", "openvino"}
    assert (first is net) == (saved["choice"] == "torch")
    # A remembered "torch" is used without converting anything; a remembered "openvino" converts again
    # but does not time again.
    saved["choice"] = "torch"
    record.write_text(json.dumps(saved))
    assert RT.prepare(net, example, "auto", name="test-unet", cache_dir=tmp_path) is net
    assert "runtime auto" not in capsys.readouterr().err


def test_a_missing_runtime_falls_back_to_torch_with_one_warning(monkeypatch, capsys):
    _, net = _unet()
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    got = RT.prepare(net, (torch.zeros(2, 1, 28, 28), torch.zeros(2)), "openvino", name="test-unet")
    assert got is net
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the openvino runtime is unavailable") and "using torch" in lines[0]


def test_unknown_runtime_is_a_user_error():
    with pytest.raises(Exception, match="unknown runtime 'tensorrt'"):
        RT.prepare(torch.nn.Identity(), (torch.zeros(1),), "tensorrt", name="x")


def test_a_conditional_net_compiled_with_labels_draws_no_label_when_none_are_given():
    cfg, net = _unet()
    assert cfg.model.conditional
    n = 8
    example = (torch.zeros(n, 1, 28, 28), torch.zeros(n), torch.zeros(n, dtype=torch.long))
    compiled = RT.prepare(net, example, "openvino", name="test-unet-cond")
    with pytest.raises(TypeError, match="takes 3 inputs, got 2"):  # never the last call's labels, silently
        compiled(*example[:2])
    process = processes.build(cfg.process)
    kw = dict(seed=3, sampler="ddim", sampler_options={"steps": 5})
    digits = torch.arange(n) % 10
    compiled(*example[:2], torch.full((n,), 7))  # leave other labels in the graph: they must not be used
    for labels, w in ((None, 0), (digits, 1)):  # the unconditional mode, then given digits with guidance
        a = generate(net, process, cfg, n, digits=labels, guidance=w, **kw)
        b = generate(NullLabelDefault(compiled), process, cfg, n, digits=labels, guidance=w, **kw)
        assert (a == b).float().mean().item() >= 0.999


def test_chunked_net_gives_the_whole_batch_outputs_in_calls_of_at_most_rows_rows():
    cfg, net = _unet()
    seen = []

    def counting(x, t, y):
        seen.append((len(x), len(t), len(y)))
        return net(x, t, y)

    x, t, y = torch.randn(10, 1, 28, 28), torch.rand(10), torch.arange(10) % 10
    chunked = RT.Chunked(counting, rows=4)
    with torch.no_grad():
        assert torch.allclose(chunked(x, t, y), net(x, t, y), atol=1e-6)
    assert seen == [(4, 4, 4), (4, 4, 4), (2, 2, 2)]
    # an input that is not one row per image (a shared scalar) goes to every call whole
    shared = RT.Chunked(lambda x, s: x * s, rows=3)(torch.ones(7, 2), torch.tensor(2.0))
    assert torch.equal(shared, torch.full((7, 2), 2.0))
    # the trained net inside load_trained's wrapper is a child module: eval() and parameters() reach it
    assert list(RT.Chunked(net, 4).parameters()) == list(net.parameters())


def test_openvino_compiles_each_input_shape_it_meets_and_keeps_a_few():
    _, net = _unet()
    # one stream: with two, even batches would run as halves and share their graphs with the odd ones
    compiled = RT.OpenVINOModule(net, (torch.zeros(4, 1, 28, 28), torch.zeros(4)), streams=1)
    g = torch.Generator().manual_seed(1)
    for n in (4, 3, 5, 4, 2, 6, 3):  # more shapes than it keeps, and shapes seen before
        x, t = torch.randn(n, 1, 28, 28, generator=g), torch.rand(n, generator=g)
        with torch.no_grad():
            ref = net(x, t)
        got = compiled(x, t)
        assert got.shape == ref.shape and ((got - ref).norm() / ref.norm()).item() < 1e-5
    assert len(compiled.compiled) == compiled.MAX_SHAPES
    assert list(compiled.compiled)[-1] == ((3, 1, 28, 28), (3,))  # the newest shape stays


def test_openvino_streams_split_the_rows_and_agree_with_torch():
    _, net = _unet()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a stream per thread: two streams need two
    try:
        compiled = RT.OpenVINOModule(net, (torch.zeros(6, 1, 28, 28), torch.zeros(6)), streams=2)
    finally:
        torch.set_num_threads(threads)
    assert compiled.streams == 2
    g = torch.Generator().manual_seed(2)
    for n in (6, 5):  # 6 rows: two requests of 3 at once; 5 do not split evenly: one call of 5
        x, t = torch.randn(n, 1, 28, 28, generator=g), torch.rand(n, generator=g)
        with torch.no_grad():
            ref = net(x, t)
        got = compiled(x, t)
        assert got.shape == ref.shape and ((got - ref).norm() / ref.norm()).item() < 1e-5
    assert set(compiled.compiled) == {((3, 1, 28, 28), (3,)), ((5, 1, 28, 28), (5,))}
