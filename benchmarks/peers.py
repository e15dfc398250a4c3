"""The peers mnistdiff is measured against, written the way their users write them.

- reference_training: the report's starter-code shape: a torch Dataset applying a per-item
  to-tensor/normalise transform (PIL + numpy, no torchvision), a shuffling DataLoader, fp32, eager,
  torch's default Adam, q_sample written inline with the schedule indexed per batch.
- diffusers_scheduler / diffusers_ddim_scheduler + diffusers_sample: a loop over diffusers' DDPMScheduler
  or DDIMScheduler driving the same net with the same schedule (tests/test_peers.py checks the images).
- naive_inception: the same TorchScript Inception, NCHW, fp32, batch 32.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class MNISTItems(Dataset):
    """uint8 digits served one at a time through a PIL/numpy transform, as torchvision's
    ToTensor + Normalize((0.5,), (1.0,)) would (the seed's [-0.5, 0.5] range)."""

    def __init__(self, images_u8: torch.Tensor):
        self.images = images_u8.numpy()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        x = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy((x - 0.5)[None]), 0


def reference_training(net, schedule, images_u8: torch.Tensor, *, steps: int, batch_size: int, lr: float,
                       seed: int) -> tuple[list[float], float]:
    """(per-step losses, seconds) of `steps` optimizer steps of the starter-code loop."""
    T = schedule.T
    alpha_bar = schedule.alphas_cumprod
    loader = DataLoader(MNISTItems(images_u8), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    out, t0 = [], time.perf_counter()
    while len(out) < steps:
        for x, _ in loader:
            t = torch.randint(1, T + 1, (x.shape[0],))
            eps = torch.randn_like(x)
            ab = alpha_bar[t, None, None, None]
            x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps
            loss = F.mse_loss(net(x_t, t / T), eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
            if len(out) == steps:
                break
    return out, time.perf_counter() - t0


def diffusers_scheduler(schedule):
    """DDPMScheduler reproducing mnistdiff's schedule and sampler exactly.

    mnistdiff indexes t = 0..T and its alpha_bar_t includes the factor (1 - beta_0) (the report's
    code does the same); diffusers indexes k = t - 1 = 0..T-1. So: trained_betas = betas[1:],
    alphas_cumprod = ours[1:], and the alpha_bar "before the first step" is ours at t = 0.
    fixed_large variance is sigma_t^2 = beta_t, Ho et al.'s choice that mnistdiff samples with.
    """
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=schedule.T, trained_betas=schedule.betas[1:].double().numpy(),
                          variance_type="fixed_large", clip_sample=False, prediction_type="epsilon")
    # In float64: diffusers re-derives beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, which float32 loses
    # to cancellation near t = 1 (relative error 3e-4). 0-dim float64 factors keep the images float32.
    alpha_bar = _alpha_bar(schedule)
    sched.alphas_cumprod = alpha_bar[1:]
    sched.one = alpha_bar[0]
    sched.set_timesteps(schedule.T)
    return sched


def diffusers_ddim_scheduler(schedule, steps: int):
    """DDIMScheduler on mnistdiff's schedule (indexed as above), its last step going to alpha_bar = 1
    as mnistdiff's does. diffusers steps from k to k - T // steps, mnistdiff along its own evenly
    spaced sub-sequence, so the two visit the same timesteps only at steps = T."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=schedule.T, trained_betas=schedule.betas[1:].double().numpy(),
                          clip_sample=False, set_alpha_to_one=True, prediction_type="epsilon")
    sched.alphas_cumprod = _alpha_bar(schedule)[1:]
    sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    sched.set_timesteps(steps)
    return sched


def diffusers_dpm_scheduler(schedule, steps: int):
    """DPMSolverMultistepScheduler (DPM-Solver++, order 2, last step to sigma = 0) on mnistdiff's schedule
    (indexed as above), on the timesteps mnistdiff's dpm++2m visits (DDIM's sub-sequence, k = t - 1)."""
    from diffusers import DPMSolverMultistepScheduler

    from mnistdiff.sampling.ddpm import ddim_timesteps

    sched = DPMSolverMultistepScheduler(num_train_timesteps=schedule.T, trained_betas=schedule.betas[1:].double().numpy(),
                                        algorithm_type="dpmsolver++", solver_order=2, prediction_type="epsilon",
                                        final_sigmas_type="zero", lower_order_final=True)
    alpha_bar = _alpha_bar(schedule)[1:]
    sched.alphas_cumprod = alpha_bar
    sched.alpha_t, sched.sigma_t = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    sched.lambda_t = torch.log(sched.alpha_t) - torch.log(sched.sigma_t)
    sched.set_timesteps(timesteps=[t - 1 for t in ddim_timesteps(schedule.T, steps)])
    return sched


def _alpha_bar(schedule) -> torch.Tensor:
    return torch.cumprod(1 - schedule.betas.double(), 0)


@torch.inference_mode()
def diffusers_sample(net, sched, x_T: torch.Tensor, generator: torch.Generator, **step_options) -> torch.Tensor:
    """The loop a diffusers user writes; net(x, t / T) with mnistdiff's t = k + 1."""
    x = x_T.clone()
    n, T = x.shape[0], sched.config.num_train_timesteps
    for k in sched.timesteps:
        eps = net(x, torch.full((n,), (int(k) + 1) / T))
        x = sched.step(eps, k, x, generator=generator, **step_options).prev_sample
    return x


@torch.inference_mode()
def diffusers_edm_dpmpp_2m(net, x_T: torch.Tensor, steps: int, sigma_data: float = 0.5) -> torch.Tensor:
    """diffusers' EDMDPMSolverMultistepScheduler (second order, midpoint, last step to sigma = 0) driving
    an mnistdiff edm net: diffusers feeds c_noise = log(sigma) / 4, mnistdiff's nets take that log sigma
    rescaled to [0, 1] (edm.time_of), and diffusers' "epsilon" output preconditioning is EDM's."""
    from diffusers import EDMDPMSolverMultistepScheduler

    from mnistdiff.processes import edm

    sched = EDMDPMSolverMultistepScheduler(sigma_data=sigma_data, prediction_type="epsilon", solver_order=2,
                                           algorithm_type="dpmsolver++", final_sigmas_type="zero")
    sched.set_timesteps(steps)
    x = x_T * sched.init_noise_sigma
    n = x.shape[0]
    for c_noise in sched.timesteps:
        sigma = torch.exp(4 * c_noise)
        out = net(sched.scale_model_input(x, c_noise), edm.time_of(sigma).expand(n))
        x = sched.step(out, c_noise, x).prev_sample
    return x


def naive_inception(path, images_u8: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """pool3 features with the same TorchScript file and resize, left in NCHW, batch 32."""
    net = torch.jit.load(str(path), map_location="cpu").eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images_u8), batch_size):
            x = images_u8[i:i + batch_size].unsqueeze(1).float()
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(net(((x - 128.0) / 128.0).repeat(1, 3, 1, 1)).float())
    return torch.cat(out)
