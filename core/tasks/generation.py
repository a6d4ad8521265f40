"""Generation: deterministic latents, sample grids, Fréchet distance (FID in Inception space, or FD in another
named feature space) with KID beside FID; DCGAN training as two optimiser phases per step."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.data.datasets import Dataset, load_dataset
from core.engine import Engine, LoadedModel
from core.errors import InvalidInput
from core.metrics.features import choose_extractor, features, reference_set
from core.metrics.frechet import frechet_distance_features, frechet_features
from core.metrics.kid import kernel_inception_distance
from core.models.registry import ModelSpec, get_spec
from core.models.small_nets import DCGANDiscriminator
from core.tasks import training_sets
from core.tasks.base import measured, BenchmarkParams, Evaluation, Phase, Progress, Task, TrainData, TrainPlan
from core.tasks.evaluation import run_chunked, scored
from core.tasks.fitting import build_model
from core.tasks.outputs import EvaluationOutputs, KernelDistanceSpread
from core.tasks.registry import register_task

FD_SAMPLES_PER_EPOCH = 64  # generated samples scored against the reference set after every training epoch


def latents(n: int, dim: int, seed: int, label: int | None = None) -> list[torch.Tensor]:
    """Deterministic standard-normal latents; a conditional generator gets the label appended."""
    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    if label is not None:
        z = torch.cat([z, torch.full((n, 1), float(label))], 1)
    return list(z.unbind(0))


def evaluate_generation(engine: Engine, loaded: LoadedModel, ds: Dataset, batch_size: int, progress: Progress | None,
                        samples: int = 256, seed: int = 0, feature_space: str = "auto") -> Evaluation:
    if samples < 2:
        raise InvalidInput("A Fréchet distance needs at least 2 generated samples.")
    spec = loaded.spec
    assert spec.latent_dim is not None  # every generation model declares its latent size
    if spec.num_classes:
        z = [v for i in range(samples) for v in latents(1, spec.latent_dim, seed + i, i % spec.num_classes)]
    else:
        z = latents(samples, spec.latent_dim, seed)
    outs, stats = run_chunked(engine, loaded, z, batch_size, progress, chunk=64, stage="generating")
    scored(progress, 0, 0)  # features of the samples and of the reference set: no count to show
    generated = [(o.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for o in outs]
    ext = choose_extractor(engine, feature_space)
    ref_feats, ref = reference_set(ext, ds.content_hash, [s.image for s in ds.samples])
    gen_feats = features(ext, generated)
    distance = frechet_features(gen_feats, ref_feats)
    value = distance.value
    counts = f"n_gen={len(gen_feats)}, n_ref={ref.count}"
    conv = f"{ext.convention}; {counts}"
    if min(len(gen_feats), ref.count) < 10_000:
        conv += " (biased below 10k samples: compare only at equal n)"
    if distance.note:
        conv += f"; {distance.note}"
    metrics = [measured(ext.metric, value, conv)]
    spread = None
    if ext.metric == "fid":  # KID beside FID: unbiased at small n (Binkowski et al. 2018)
        kid = kernel_inception_distance(gen_feats, ref_feats, seed=seed)
        metrics.append(measured("kid", kid.mean, f"{ext.convention}; KID: unbiased MMD^2, kernel (x.y/d+1)^3, "
                                   f"mean of {kid.subsets} random subsets of m={kid.subset_size} (seeded by the "
                                   f"run's seed); {counts}; raw (papers often print x1e3)"))
        spread = KernelDistanceSpread(kid.std, kid.subsets, kid.subset_size)
    outputs = EvaluationOutputs(feature_space=ext.key, kid=spread)
    return Evaluation(metrics, [], outputs, stats, {"samples": samples, "seed": seed, "feature_space": ext.key})


class GenerationTask(Task):
    name = "generation"
    tables = frozenset({"methods"})
    order = 5
    title = "Generation"
    headline = ("fid", "fd_efficientnet_lite0")
    benchmark_options = ("samples", "seed", "feature_space")
    train_datasets = ("digits", "shapes")
    trains_by_default = True

    def evaluate(self, engine: Engine, loaded: LoadedModel, ds: Dataset, params: BenchmarkParams,
                 progress: Progress | None) -> Evaluation:
        return evaluate_generation(engine, loaded, ds, params.batch_size, progress, params.samples, params.seed,
                                   params.feature_space)

    def run_seed(self, params: BenchmarkParams, ds: Dataset) -> int | None:
        return params.seed  # the latents' seed

    def training_data(self, cfg, spec: ModelSpec) -> TrainData:
        return training_sets.generation(cfg, bool(spec.num_classes))

    def train_plan(self, cfg, td: TrainData, device: torch.device, engine: Engine, note) -> TrainPlan:
        """Non-saturating GAN loss (BCE); Adam betas (0.5, 0.999) as in DCGAN when Adam is chosen. The Fréchet
        distance of generated samples to the reference set after every epoch is the validation metric."""
        spec = get_spec(cfg.base)
        assert spec.latent_dim is not None  # every generation model declares its latent size
        generator, _ = build_model(cfg, None)
        conditional = bool(spec.num_classes)
        discriminator = DCGANDiscriminator(num_classes=spec.num_classes or 0)
        generator.to(device)
        discriminator.to(device)
        # on the device once: a batch is a gather there, not a copy from the host per step
        real = torch.stack([torch.from_numpy(np.array(x)).permute(2, 0, 1).float() / 255 for x in td.train.images]).to(device)
        labels = torch.tensor(td.labels, device=device) if conditional else None
        note("computing features of the reference images")
        ext = choose_extractor(engine, "auto")
        assert td.test_dataset is not None  # generation training data always names its reference set
        reference = load_dataset(td.test_dataset)
        ref_feats, _ = reference_set(ext, reference.content_hash, [s.image for s in reference.samples])
        n_eval = FD_SAMPLES_PER_EPOCH
        z_eval = torch.randn(n_eval, spec.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 99))
        if spec.num_classes:  # conditional
            z_eval = torch.cat([z_eval, (torch.arange(n_eval) % spec.num_classes)[:, None].float()], 1)

        def batch(idx, rng):
            at = torch.tensor(idx, device=device)
            x = real[at]
            y = labels[at] if labels is not None else None
            z = torch.randn(len(idx), spec.latent_dim, device=device)
            if y is not None:
                z = torch.cat([z, y[:, None].float()], 1)
            return x, y, generator(z)

        def d_loss(b):
            x, y, fake = b
            ones, zeros = torch.ones(len(x), device=device), torch.zeros(len(x), device=device)
            return (F.binary_cross_entropy_with_logits(discriminator(x, y), ones)
                    + F.binary_cross_entropy_with_logits(discriminator(fake.detach(), y), zeros))

        def g_loss(b):
            x, y, fake = b
            return F.binary_cross_entropy_with_logits(discriminator(fake, y), torch.ones(len(x), device=device))

        def validate():
            samples = generator(z_eval.to(device)).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            return {ext.metric: frechet_distance_features(features(ext, list(samples)), ref_feats)}

        def train_mode():
            generator.train()
            discriminator.train()

        betas = (0.5, 0.999)
        return TrainPlan(generator, len(real), batch,
                         [Phase("d_loss", [discriminator], d_loss, betas), Phase("g_loss", [generator], g_loss, betas)],
                         validate, ext.metric, train_mode, eval_modules=[discriminator], validating="scoring generated samples",
                         finish=lambda best: {ext.metric: best[ext.metric], "fd_samples": n_eval},
                         conventions={ext.metric: f"n_gen={n_eval} (fixed latents), n_ref={len(ref_feats)}: biased at "
                                                  "this small n, so compare epochs of this job only, never with a "
                                                  f"benchmark's value; {ext.convention}"})


TASK = register_task(GenerationTask())
