"""The named configurations (`mnistdiff presets`): the report's runs, their cold-diffusion variants, and the
models beyond the report. A preset is a description and a set of overrides of Config()'s defaults (the report's
Table 1.1), applied by config.preset. Data only: imports nothing."""

from __future__ import annotations


def _preset(doc: str, **overrides) -> tuple[str, dict]:
    return doc, overrides


_UNET = dict(net="unet", hidden=(16, 32, 64), attention=True, act="silu", ema_decay=0.999, lr=1e-3,
             lr_warmup=200, lr_decay="cosine", grad_clip=1.0)
# The UNet at batch 32 (ddpm-unet's and cold-row-unet's): four times batch 128's optimiser steps per epoch, at a
# doubled rate with warm-up over the first 800 steps (25,600 images).
_UNET_BS32 = {**_UNET, "lr": 2e-3, "lr_warmup": 800, "batch_size": 32}

PRESETS: dict[str, tuple[str, dict]] = {
    "ddpm-default": _preset("The report's Table 1.1: DDPM, linear betas (1e-4, 0.02), T=1000, lr 2e-4, "
                            "CNN (16,32,32,16), batch 128, GELU, 100 epochs"),
    "ddpm-testing2": _preset("The report's Table 1.2 ('testing2'): as ddpm-default with T=1500 and lr 4e-4",
                             T=1500, lr=4e-4),
    "quick": _preset("The seed's DDPM and CNN (T=1000) sized for `make run`: 2 epochs on a 25,000-image "
                     "subset at lr 1e-3: minutes on a 2-core CPU, and no digits yet",
                     epochs=2, lr=1e-3, subset=25000, sample_epochs=(1,)),
    # Cold diffusion (the report's Chapter 2 and Appendix): the net restores x0; T = 28 / group.
    "cold-row-random": _preset("The report's Table 2.1: row averaging, random order, T=28, lr 2e-4, "
                               "CNN (16,32,32,16), batch 128, GELU, MSE, 80 epochs",
                               degradation="row-averaging", T=28, prediction="x0", epochs=80),
    "cold-col-random": _preset("Column averaging, random order, T=28, 60 epochs (the report's Fig 3.3)",
                               degradation="column-averaging", T=28, prediction="x0", epochs=60),
    "cold-row-random-g4": _preset("Row averaging in bands of 4 rows, random order, T=7, 80 epochs "
                                  "(the report's Fig 3.2, Table 3.2)",
                                  degradation="row-averaging", group=4, T=7, prediction="x0", epochs=80),
    "cold-col-random-g4": _preset("Column averaging in bands of 4 columns, random order, T=7, 60 epochs "
                                  "(the report's Fig 3.1, Table 3.1)",
                                  degradation="column-averaging", group=4, T=7, prediction="x0", epochs=60),
    "cold-row-outside-in": _preset("As cold-row-random with rows averaged edges first (1, 28, 2, 27, ...)",
                                   degradation="row-averaging", order="outside-in", T=28, prediction="x0",
                                   epochs=80),
    "cold-row-inside-out": _preset("As cold-row-random with rows averaged centre first (14, 15, 13, 16, ...)",
                                   degradation="row-averaging", order="inside-out", T=28, prediction="x0",
                                   epochs=80),
    "cold-col-outside-in": _preset("As cold-col-random with columns averaged edges first",
                                   degradation="column-averaging", order="outside-in", T=28, prediction="x0",
                                   epochs=60),
    "cold-col-inside-out": _preset("As cold-col-random with columns averaged centre first",
                                   degradation="column-averaging", order="inside-out", T=28, prediction="x0",
                                   epochs=60),
    # Beyond the report: a small UNet with the training options quality needs. Why each choice (v-prediction
    # on the cosine schedule, batch 32 at lr 2e-3, class-conditional, 20 epochs) is in docs/quality.md, with the
    # results files that measured it.
    "ddpm-unet": _preset("DDPM with a UNet (16,32,64 channels at 28/14/7 px, attention at 7x7, SiLU), cosine "
                         "schedule T=1000, v-prediction, class-conditional (label dropout 0.1), EMA 0.999, batch 32 "
                         "at lr 2e-3 with 800 warm-up steps and cosine decay, gradient clipping at 1, 20 epochs "
                         "(~36 min in bf16 on a 2-core AVX512-BF16 CPU; about 2 hours in fp32 on a 2-core AVX2 one, "
                         "where --epochs 8 fits the hour); sample with --sampler ddim --steps 50 --clip --digit all "
                         "--guidance W",
                         **_UNET_BS32, prediction="v", schedule="cosine", conditional=True, epochs=20,
                         sample_epochs=(1, 10)),
    # Each choice (EDM, p_mean -0.4, class-conditional with guidance 1, batch 32 at lr 2e-3) was picked by a
    # measurement: docs/quality.md names them, with the results files (results/ablations/quality-ablation.md,
    # results/probes/, results/quick-unet.md).
    "quick-unet": _preset("`make run`'s preset: the ddpm-unet's UNet and options for 1 epoch (60,000 images in "
                          "1,875 steps of 32 at lr 2e-3, 400 warm-up steps, cosine decay over the epoch) in the EDM "
                          "formulation (Karras et al. 2022) with log sigma ~ N(-0.4, 1.4^2), class-conditional "
                          "(label dropout 0.1); sample with Heun, 18 sigmas, --digit all --guidance 1",
                          **{**_UNET, "lr": 2e-3, "lr_warmup": 400}, batch_size=32, degradation="edm", prediction="x0",
                          p_mean=-0.4, p_std=1.4, conditional=True, epochs=1, sample_epochs=()),
    # Class-conditional: the digit is an input, dropped for 10% of each batch, so one net samples a given digit
    # with classifier-free guidance (Ho & Salimans 2022). results/conditional.md.
    "ddpm-unet-cond": _preset("The class-conditional DDPM of results/conditional.md: the ddpm-unet's UNet at "
                              "batch 128 and lr 1e-3 for 6 epochs, v-prediction, cosine schedule, no min-SNR; label "
                              "dropout 0.1; sample with --sampler ddim --steps 50 --digit D --guidance W",
                              **_UNET, conditional=True, prediction="v", schedule="cosine", epochs=6,
                              sample_epochs=(1, 3)),
    "ddpm-default-cond": _preset("The report's CNN and Table 1.1 hyperparameters, class-conditional (label dropout "
                                 "0.1), 15 epochs: what fits the ddpm-unet's hour at the CNN's ~300 images/s",
                                 conditional=True, epochs=15, sample_epochs=(1, 5, 10)),
    # Batch 32 at lr 2e-3 with 800 warm-up steps, as ddpm-unet: four times the optimiser steps per epoch of batch
    # 128 (results/archive/cold-row-unet.md measured both).
    "cold-row-unet": _preset("Cold diffusion (row averaging, random order, T=28) with the ddpm-unet's UNet and "
                             "training options (batch 32 at lr 2e-3, 800 warm-up steps), L1 loss (Bansal et al.), "
                             "6 epochs",
                             **_UNET_BS32, degradation="row-averaging", T=28, prediction="x0", loss="l1", epochs=6,
                             sample_epochs=(1, 3)),
    "cold-blur": _preset("Bansal et al.'s Gaussian blur towards the mean image, T=20, L1 loss, 80 epochs",
                         degradation="blur", T=20, prediction="x0", loss="l1", epochs=80),
}

