"""Issue 8's options on tiny settings: the UNet, EMA, prediction targets, min-SNR, LR schedule, clipping."""

import pytest
import torch

from mnistdiff.training import checkpoint, ema as E, loop as T
from mnistdiff import config as C, processes, nets
from mnistdiff.processes import losses, predictions, schedules
from mnistdiff.sampling import samplers
from mnistdiff.errors import UserError
from mnistdiff.sampling.load import load_trained
from mnistdiff.nets import UNet
from mnistdiff.training import optim
from mnistdiff.sampling import ddpm
from mnistdiff.sampling import cold
from mnistdiff.training.checkpoint import store

UNET = dict(net="unet", hidden=(8, 16), act="silu", subset=128, epochs=2, T=20, batch_size=32, sample_epochs=())


# -- the UNet ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [(8,), (8, 16), (8, 16, 16)])
@pytest.mark.parametrize("attention", [False, True])
def test_unet_keeps_the_image_shape(hidden, attention):
    net = UNet(hidden, attention=attention, res_blocks=2)
    x = torch.randn(3, 1, 28, 28)
    assert net(x, torch.rand(3)).shape == x.shape


def test_unet_starts_at_zero_then_depends_on_time_and_input():
    torch.manual_seed(0)
    net = UNet((8, 16), attention=True)
    x = torch.randn(2, 1, 28, 28)
    # Zero-initialised last convs: the untrained net predicts 0 (the mean of eps), a calm start.
    assert net(x, torch.rand(2)).abs().max() == 0
    for p in net.parameters():  # any trained weights: now time and input matter
        p.data.normal_(0, 0.2)
    t1, t2 = torch.tensor([0.1, 0.1]), torch.tensor([0.9, 0.9])
    assert not torch.allclose(net(x, t1), net(x, t2))
    assert not torch.allclose(net(x, t1), net(x.flip(-1), t1))


def test_scale_shift_carries_the_time_a_group_norm_cancels():
    """At 8 channels every GroupNorm group is one channel, so the default shift added before the norm
    is removed entirely and the net cannot see t; scale and shift after the norm reach the output."""
    x, t1, t2 = torch.randn(2, 1, 28, 28), torch.tensor([0.1, 0.1]), torch.tensor([0.9, 0.9])
    for scale_shift in (False, True):
        torch.manual_seed(0)
        net = UNet((8,), scale_shift=scale_shift)
        for p in net.parameters():
            p.data.normal_(0, 0.2)
        assert torch.allclose(net(x, t1), net(x, t2), atol=1e-5) is not scale_shift


def test_unet_from_config_and_its_limits():
    cfg = C.validate(C.apply(C.Config(), dict(net="unet", hidden=(8, 16, 32), attention=True, res_blocks=2)))
    net = nets.build(cfg.model)
    assert isinstance(net, UNet) and len(net.down) == 3 and len(net.down[0]) == 2
    with pytest.raises(UserError, match="at most 3 levels"):
        C.validate(C.apply(C.Config(), dict(net="unet", hidden=(8, 8, 8, 8))))
    with pytest.raises(UserError, match="unet settings"):
        C.validate(C.apply(C.Config(), dict(attention=True)))  # the seed CNN has no attention
    with pytest.raises(UserError, match="unet settings"):
        C.validate(C.apply(C.Config(), dict(scale_shift=True)))


# -- prediction targets --------------------------------------------------------------------------------

def _a_s(n=5):
    ab = torch.rand(n, 1, 1, 1) * 0.98 + 0.01
    return ab.sqrt(), (1 - ab).sqrt()


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_targets_convert_back_to_eps_and_x0(prediction):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 1, 28, 28, generator=g), torch.randn(5, 1, 28, 28, generator=g)
    a, s = _a_s()
    x_t = a * x0 + s * eps
    out = predictions.target(prediction, x0, eps, a, s)
    torch.testing.assert_close(predictions.to_eps(prediction, out, x_t, a, s), eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(predictions.to_x0(prediction, out, x_t, a, s), x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_ddim_from_an_exact_x0_or_v_net_lands_on_x0(prediction):
    """A net that outputs the exact target for a known x0, seen through predictions.for_sampling,
    must drive deterministic DDIM onto x0: the conversions and the samplers agree."""
    process = processes.build(C.ProcessConfig(T=50))
    x0 = torch.rand(2, 1, 28, 28) * 2 - 1

    class Oracle(torch.nn.Module):
        def forward(self, x_t, t):
            i = (t * process.T).round().long()
            a, s = process.coefficients(i)
            return predictions.target(prediction, x0, (x_t - a * x0) / s, a, s)

    net = predictions.for_sampling(Oracle(), prediction, process)
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = ddpm.sample_ddim(net, process.schedule, x_T, steps=10)
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)


def test_cold_and_eps_nets_are_sampled_as_they_are():
    net = nets.SeedCNN((4,))
    assert predictions.for_sampling(net, "eps", processes.build(C.ProcessConfig())) is net
    cold = processes.build(C.ProcessConfig(degradation="row-averaging", T=28, prediction="x0"))
    assert predictions.for_sampling(net, "x0", cold) is net


# -- min-SNR weighting -------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weights_the_implied_x0_error_by_min_snr_gamma(prediction):
    """For a prediction error d in target units, the x0 error is d * s/a (eps), d (x0), d * s (v); so a
    loss weight w on the target error is w / conv^2 on the x0 error, which must equal min(SNR, gamma)."""
    a, s = _a_s(200)
    snr = (a / s).square().flatten()
    w = losses.min_snr_weight(prediction, snr, 5.0)
    x0_per_target = {"eps": (s / a).flatten(), "x0": torch.ones_like(snr), "v": s.flatten()}[prediction]
    torch.testing.assert_close(w / x0_per_target.square(), snr.clamp(max=5.0), rtol=1e-4, atol=1e-6)


def test_min_snr_is_refused_for_cold_processes():
    with pytest.raises(UserError, match="min_snr"):
        C.validate(C.apply(C.preset("cold-row-random"), dict(min_snr=5)))


# -- learning rate, EMA ----------------------------------------------------------------------------------

def test_learning_rate_warms_up_then_decays_along_a_cosine():
    lr = lambda step: optim.learning_rate(step, lr=1.0, warmup=10, decay="cosine", total=110)  # noqa: E731
    assert [lr(s) for s in (1, 5, 10)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr(11) == pytest.approx(1.0) and lr(61) == pytest.approx(0.5)
    assert 0 < lr(110) < 1e-3 and all(lr(s) >= lr(s + 1) for s in range(10, 110))
    assert optim.learning_rate(7, lr=0.3) == 0.3  # the report's constant rate


def test_ema_update_is_the_weighted_average():
    net = torch.nn.Linear(3, 2)
    ema = E.EMA(net, decay=0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, step=1000)  # past the warm-up: d = 0.9
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * net.state_dict()[k])
    assert E.decay_at(0.999, 0) == pytest.approx(0.1) and E.decay_at(0.999, 10**6) == 0.999


def test_cosine_schedule_properties():
    s = schedules.cosine(1000)
    ab = s.alphas_cumprod
    assert ab[0] == pytest.approx(1, abs=1e-4) and (ab[1:] < ab[:-1]).all() and ab[-1] < 1e-4
    assert (s.betas > 0).all() and (s.betas <= 0.999).all()
    # Slower destruction than the linear schedule early on: more signal at t = T/4 (Nichol & Dhariwal).
    assert ab[250] > schedules.linear(1e-4, 0.02, 1000).alphas_cumprod[250]


# -- in a real run -------------------------------------------------------------------------------------

def test_unet_run_with_every_option_resumes_bit_exactly_and_samples_from_ema(tmp_path):
    cfg = C.apply(C.Config(), dict(UNET, prediction="v", min_snr=5.0, ema_decay=0.9, lr=2e-3, lr_warmup=3,
                                   lr_decay="cosine", grad_clip=0.5, schedule="cosine", scale_shift=True))
    T.train(cfg, tmp_path / "whole", progress=False)
    # Interrupted mid-epoch after the warm-up, where the cosine decay and the EMA are both moving.
    T.train(C.apply(cfg, dict(checkpoint_every=1)), tmp_path / "halves", progress=False, stop_after_steps=5)
    T.train(C.apply(cfg, dict(checkpoint_every=1)), tmp_path / "halves", resume=True, progress=False)
    a = checkpoint.load(store.checkpoint_path(tmp_path / "whole", "last"))[0]
    b = checkpoint.load(store.checkpoint_path(tmp_path / "halves", "last"))[0]
    assert any(k.startswith("ema/") for k in a) and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("rng/")), "resume changed the run"
    assert not torch.equal(a["ema/out.2.weight"], a["model/out.2.weight"])
    *_, ema_net, _ = load_trained(tmp_path / "whole")
    _, raw_net, _ = load_trained(tmp_path / "whole", weights="raw")
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([0.5, 0.5])
    assert not torch.allclose(ema_net(x, t), raw_net(x, t))  # samples come from the EMA weights


def test_cold_unet_trains_and_restores(tmp_path):
    cfg = C.apply(C.preset("cold-row-unet"), dict(UNET, T=28, epochs=1, ema_decay=0.5))
    T.train(cfg, tmp_path / "cold", progress=False)
    _, net, process = load_trained(tmp_path / "cold")
    out = cold.sample_cold(net, process, torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 1, 28, 28) and torch.isfinite(out).all()


def test_gradient_clipping_reaches_the_optimizer(tmp_path):
    """Adam's update is invariant to the gradient's scale until it nears Adam's eps (1e-8): clipping the
    norm to 1e-12 must therefore all but stop the first step, where no clipping moves every weight."""
    deltas = {}
    for clip in (0.0, 1e-12):
        cfg = C.apply(C.Config(), dict(UNET, grad_clip=clip, checkpoint_every=1))
        T.train(cfg, tmp_path / f"clip{clip}", progress=False, stop_after_steps=1)
        init, _ = T.build(cfg)
        net, _ = T.build(cfg)
        T.restore(tmp_path / f"clip{clip}", cfg, net, torch.optim.Adam(net.parameters()))
        deltas[clip] = sum((p - q).abs().sum().item() for p, q in zip(net.parameters(), init.parameters()))
    assert deltas[1e-12] < 1e-3 * deltas[0.0], deltas


def test_ddim_clip_keeps_estimates_in_the_data_range_and_exact_ones_unchanged():
    process = processes.build(C.ProcessConfig(T=50))
    x_T = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    wild = lambda x, t: 100 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))  # noqa: E731
    assert ddpm.sample_ddim(wild, process.schedule, x_T, steps=10).abs().max() > 1
    assert ddpm.sample_ddim(wild, process.schedule, x_T, steps=10, clip=True).abs().max() <= 0.5 + 1e-5
    x0 = torch.rand(3, 1, 28, 28) - 0.5  # inside the range: clipping changes nothing for an exact net
    exact = predictions.for_sampling(lambda x, t: x0, "x0", process)
    torch.testing.assert_close(ddpm.sample_ddim(exact, process.schedule, x_T, steps=10, clip=True), x0,
                               atol=1e-3, rtol=0)
    assert samplers.check_options("ddim", {"steps": 10, "clip": True, "eta": None}, process) == {"steps": 10, "clip": True}
