"""Sanity checks on inversions: does an image show what *the model* learned, or what the
method makes on its own?

Four checks per image, each turned into a flag by a documented threshold
(:class:`SanityThresholds`, calibrated by ``benchmarks/sanity_calibration.py``; the numbers are
in ``benchmarks/results/sanity_calibration.json``):

* **model randomization** (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018):
  the same setting and seed on a copy of the model whose weights are re-initialised, all
  layers, and cascading from the top layer down. An image that a randomized model also
  produces is the method's, not the model's. Similarity is the cosine of the evaluators'
  penultimate features (the input of their last linear layer), averaged over evaluators,
  plus SSIM (:func:`ssim`). Flag ``randomization``: the all-layer copy's image is as similar
  as ``thresholds.randomization``; flag ``cascade``: a copy randomized from the top only
  (the classifier first) gives an image that similar.
* **seed stability**: the same similarity across ``seeds`` seeds. Reported, never flagged:
  a model may well have several ways to draw a class.
* **transfer**: :func:`piikit.analysis.evaluate.score`'s cross-model rank and probability.
  Flag ``transfer``: no evaluator ranks the target within ``thresholds.transfer_rank``.
* **naturalness**: how far the image's per-layer activation statistics are from the
  BatchNorm running statistics of natural images, in a network that has BatchNorm (the first
  evaluator that has it, else the model) — DeepInversion's prior used as a measurement, each
  channel in units of its running standard deviation so one threshold holds for every layer:
  per layer the root mean square over channels of ``(μ(x) − μ)/σ`` plus that of
  ``log(σ²(x)/σ²)``, averaged over layers. Geirhos et al. ("Don't trust your eyes", ICML 2024)
  found feature visualizations processed unlike natural images in most layers; this measures
  how unlike. Flag ``naturalness``: above ``thresholds.naturalness``.

>>> report = piikit.sanity(model, result)  # doctest: +SKIP
>>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from piikit.analysis.evaluate import as_evaluator, default_evaluators, score
from piikit.device import resolve_device
from piikit.engine.inversion import invert
from piikit.models import Classifier, load_model
from piikit.models.layers import forward_hooks
from piikit.engine.priors import batchnorm_layers, feature_statistics
from piikit.validation import check_int

__all__ = [
    "SanityThresholds", "SanityRow", "SanityReport", "sanity", "randomized_copy", "ssim", "penultimate_features",
    "feature_similarity", "naturalness", "CHECKS",
]

CHECKS = ("randomization", "cascade", "transfer", "naturalness")  # the flags, in table order


@dataclass(frozen=True)
class SanityThresholds:
    """Where a measurement becomes a flag; calibrated on scikit-image's photos and on the
    48-class benchmark (``benchmarks/sanity_calibration.py``, numbers in
    ``docs/benchmarks.md``)."""

    # Cosine of the evaluators' features between the image and the randomized model's image
    # at or above which the image is the method's. Calibration (Lite1/Lite2 features): Lite0
    # `quick` 0.10-0.41 (all 48 classes); two unrelated photos 0.10-0.62; a Lite0 with random
    # weights 0.87-0.96 (48).
    randomization: float = 0.75
    # The target must be within this rank for at least one evaluator (score()'s top-5).
    # Lite0 `quick`: rank 1 for 47 of 48 classes (robin's failed image: 14); random weights: 22-960.
    transfer_rank: int = 5
    # Mean per-layer distance from BatchNorm running statistics above which the image is
    # processed unlike a natural photo. Under Lite1: Lite0 `quick` 0.85-1.58 (48 classes; the
    # highest is robin's failed image); scikit-image's object photos 0.88-1.44 (grey textures and
    # the Hubble field 1.7-2.2); random weights 2.00-2.13.
    naturalness: float = 1.6


@dataclass
class SanityRow:
    """One image's checks (``None``: not computed)."""

    image: int
    target: int
    label: str
    randomized: float | None = None  # feature cosine with the all-layer randomized model's image
    randomized_ssim: float | None = None
    cascade: dict[str, float] = field(default_factory=dict)  # level ("top 1", "top 50%") -> feature cosine
    seed_similarity: float | None = None  # mean pairwise feature cosine over the seeds
    seed_ssim: float | None = None
    transfer_prob: float | None = None  # mean evaluator probability of the target
    transfer_rank: int | None = None  # best evaluator rank of the target
    naturalness: float | None = None
    flags: tuple[str, ...] = ()


@dataclass
class SanityReport:
    """What :func:`sanity` returns: a row per image, the settings that made it."""

    rows: list[SanityRow]
    thresholds: SanityThresholds
    evaluators: list[str]
    naturalness_model: str | None
    seeds: list[int]

    @property
    def flags(self) -> list[tuple[str, ...]]:
        """Each image's flags (empty: it passed every check computed)."""
        return [row.flags for row in self.rows]

    def counts(self) -> dict[str, int]:
        """How many images each check flags."""
        return {check: sum(check in row.flags for row in self.rows) for check in CHECKS}

    def table(self) -> str:
        """A plain-text table, one line per image, then the flag counts."""
        from piikit.tables import format_table

        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        levels = list(dict.fromkeys(k for row in self.rows for k in row.cascade))
        lines = format_table([{
            "class": row.label[:28], "rand cos": fmt(row.randomized), "rand ssim": fmt(row.randomized_ssim),
            **{f"{lvl} cos": fmt(row.cascade.get(lvl)) for lvl in levels},
            "seed cos": fmt(row.seed_similarity), "seed ssim": fmt(row.seed_ssim),
            "prob": fmt(row.transfer_prob), "rank": "-" if row.transfer_rank is None else str(row.transfer_rank),
            "natural": fmt(row.naturalness), "flags": ", ".join(row.flags) or "ok",
        } for row in self.rows])
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return f"{lines}\nflagged (of {len(self.rows)}): {counts}"

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for JSON (``result.save`` writes it with the result)."""
        return {"rows": [{**asdict(r), "flags": list(r.flags)} for r in self.rows],
                "thresholds": asdict(self.thresholds), "evaluators": self.evaluators,
                "naturalness_model": self.naturalness_model, "seeds": self.seeds}


class _Result(Protocol):
    """What :func:`sanity` reads of an :class:`~piikit.InversionResult` (the result module
    imports this one to show the report)."""

    images: torch.Tensor
    targets: list[int]
    labels: list[str]
    config: Any
    seed: int | None
    model_name: str
    extra: dict[str, Any]


# --------------------------------------------------------------------------- measurements
def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(N,) structural similarity (Wang et al. 2004) of two N×C×H×W batches in [0, 1]: a
    Gaussian window (11 px, σ 1.5), constants for a dynamic range of 1, averaged over
    channels and positions. 1 for equal images, about 0 for unrelated noise.

    >>> x = torch.rand(1, 3, 32, 32); float(ssim(x, x))  # doctest: +ELLIPSIS
    1.0...
    """
    if a.shape != b.shape:
        b = F.interpolate(b.float(), size=a.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    a, b = a.float(), b.float()
    c = a.shape[1]
    window = min(window, *a.shape[-2:])
    g = torch.exp(-((torch.arange(window, dtype=torch.float32, device=a.device) - (window - 1) / 2) ** 2)
                  / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, kernel, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def _fit(clf: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Images at the size the network expects (as :func:`score` feeds evaluators)."""
    x = images.float().to(next(clf.parameters()).device)
    if tuple(x.shape[-2:]) != clf.input_size:
        x = F.interpolate(x, size=clf.input_size, mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def penultimate_features(model: Classifier, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """N×D: the input of the model's last linear layer (a CNN's pooled features, a ViT's
    class token after its final norm), or the logits if it has no linear layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    out: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        out.append(args[0].flatten(1).float().cpu())

    feats = []
    with forward_hooks(pre_hooks=[(linears[-1], keep)] if linears else []):
        for start in range(0, len(images), batch_size):
            logits = model(_fit(model, images[start : start + batch_size]))
            feats.append(out.pop() if linears else logits.float().cpu())
            out.clear()
    return torch.cat(feats)


def feature_similarity(evaluators: Sequence[Classifier], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) cosine of ``a[i]``'s and ``b[i]``'s penultimate features, averaged over evaluators."""
    sims = [F.cosine_similarity(penultimate_features(ev, a), penultimate_features(ev, b), dim=1) for ev in evaluators]
    return torch.stack(sims).mean(0)


@torch.no_grad()
def naturalness(model: Classifier, images: torch.Tensor) -> torch.Tensor:
    """(N,) each image's distance from ``model``'s BatchNorm running statistics (see the
    module's docstring): 0.9-1.4 for scikit-image's photos of objects under Lite1, 2 for
    an inversion of a Lite0 with random weights.

    Raises:
        ValueError: if ``model`` has no BatchNorm layer with running statistics.
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(f"{model.name} has no BatchNorm layer with running statistics to measure naturalness against")
    per_layer: list[torch.Tensor] = []

    def measure(module: nn.Module, args: tuple[torch.Tensor, ...], output: object) -> None:
        mean, var = feature_statistics(args[0])
        eps = float(getattr(module, "eps", 1e-5))
        run_var = module.running_var.float() + eps  # type: ignore[union-attr]
        z = (mean - module.running_mean.float()) / run_var.sqrt()  # type: ignore[union-attr]
        log_ratio = torch.log((var + eps) / run_var)
        per_layer.append(z.pow(2).mean().sqrt() + log_ratio.pow(2).mean().sqrt())

    out = []
    with forward_hooks([(m, measure) for _, m in layers]):
        for image in images:  # one at a time: each image's own statistics
            per_layer.clear()
            model(_fit(model, image[None]))
            out.append(torch.stack(per_layer).mean().cpu())
    return torch.stack(out)


# --------------------------------------------------------------------------- randomization
def _parameterized_layers(model: nn.Module) -> list[nn.Module]:
    """Modules holding parameters of their own, in registration (about: forward) order."""
    return [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm))


def randomized_copy(model: Classifier, fraction: float = 1.0, seed: int = 0) -> Classifier:
    """A copy of ``model`` whose top ``fraction`` of parameterized layers (at least the
    top one: the classifier) are re-initialised; the rest keep their weights (Adebayo et
    al.'s cascading randomization; ``fraction=1``: every layer).

    Weight matrices and kernels are drawn from He et al.'s normal (std ``sqrt(2 / fan_in)``),
    biases set to 0, other tensors (a ViT's tokens and position embeddings) drawn with std
    0.02; normalization layers become the identity (BatchNorm also forgets its running
    statistics). He's scale keeps the signal alive through the depth: PyTorch's default
    ``reset_parameters`` scale shrinks it at every layer, and a Lite0 so reset gives input
    gradients of about 1e-9 — an inversion of it never leaves its starting noise.
    """
    clone = copy.deepcopy(model)
    layers = _parameterized_layers(clone)
    if not layers:
        raise ValueError(f"{model.name} has no parameters to randomize")
    n = max(1, round(fraction * len(layers)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers[len(layers) - n :]:
            if _is_norm(layer):
                layer.reset_parameters()
                continue
            for name, p in layer.named_parameters(recurse=False):
                if p.ndim < 2:
                    fresh = torch.zeros(p.shape)
                elif name == "weight":
                    fresh = torch.randn(p.shape, generator=gen) * math.sqrt(2.0 / p[0].numel())
                else:
                    fresh = torch.randn(p.shape, generator=gen) * 0.02
                p.copy_(fresh.to(p.dtype))
    clone.name = f"{model.name} (randomized {'all' if n == len(layers) else f'top {n}'})"
    return clone


def _level_name(fraction: float, total: int) -> str:
    return "top 1" if max(1, round(fraction * total)) == 1 else f"top {round(100 * fraction)}%"


# --------------------------------------------------------------------------- the call
def sanity(
    model: Classifier | nn.Module | str,
    result: _Result,
    evaluators: Sequence[str | Classifier | nn.Module] | None = None,
    *,
    seeds: int = 3,
    randomize: bool = True,
    cascade: Sequence[float] = (0.0, 0.5),
    naturalness_model: str | Classifier | nn.Module | None = None,
    thresholds: SanityThresholds | None = None,
    device: str | torch.device | None = "auto",
    progress: bool = False,
) -> SanityReport:
    """Check every image of an inversion; the report is also kept on ``result.sanity``
    (``result.show()`` then marks the flags, ``result.save()`` writes it).

    Costs ``seeds - 1`` more inversions for seed stability, one for the all-layer
    randomization and one per ``cascade`` level, each the same call as ``result``'s (all
    its targets in one batch, its config).

    Args:
        model: the model that made ``result``.
        result: an :class:`~piikit.InversionResult` of class targets.
        evaluators: models whose features and predictions judge the images; default: the
            offline models other than the inverted one (they take 3 channels: pass your
            own for other models, e.g. a second checkpoint). With none (``[]``) only
            naturalness is measured: the other checks need them.
        seeds: seeds for the stability check (``result.seed`` and the next ones); 1 skips it.
        randomize: run the randomization checks (all layers and ``cascade``).
        cascade: fractions of the parameterized layers re-initialised from the top down;
            each gives at least the top layer (0: only the classifier).
        naturalness_model: the BatchNorm network to measure naturalness in; default: the
            first evaluator with BatchNorm, else ``model`` if it has some (else skipped).
        thresholds: where the measurements become flags (default :class:`SanityThresholds`).
        device: where the extra inversions and the measurements run.
        progress: show the extra inversions' progress.
    """
    seeds = check_int("seeds", seeds, low=1)
    thresholds = thresholds or SanityThresholds()
    clf = model if isinstance(model, Classifier) else load_model(model)
    if any(t < 0 for t in result.targets):
        raise ValueError("sanity checks need class targets (a feature objective's images have none)")
    dev = resolve_device(device, clf)
    specs = list(evaluators) if evaluators is not None else default_evaluators(result.model_name)
    judges = [as_evaluator(e).to(dev).eval() for e in specs]
    for judge in judges:
        if judge.in_chans != result.images.shape[1]:
            raise ValueError(f"evaluator {judge.name} takes {judge.in_chans}-channel images but the inversion has "
                             f"{result.images.shape[1]}; pass evaluators=[...] that take them (e.g. another "
                             f"checkpoint of your model)")
    images = result.images
    rows = [SanityRow(image=k, target=t, label=lab) for k, (t, lab) in enumerate(zip(result.targets, result.labels))]
    seed = 0 if result.seed is None else result.seed

    def again(net: Classifier, s: int) -> torch.Tensor:
        return invert(net, list(result.targets), result.config, seed=s, device=dev, progress=progress).images

    if judges:
        for row, r in zip(rows, _transfer(images, result, judges, dev)):
            row.transfer_prob, row.transfer_rank = r
    if randomize and judges:
        total = len(_parameterized_layers(clf))
        for fraction in (*cascade, 1.0):
            other = again(randomized_copy(clf, fraction, seed=seed).to(dev), seed)
            cos = feature_similarity(judges, images, other)
            if fraction >= 1.0:
                ssims = ssim(images, other)
                for row, c, s_ in zip(rows, cos.tolist(), ssims.tolist()):
                    row.randomized, row.randomized_ssim = c, s_
            else:
                for row, c in zip(rows, cos.tolist()):
                    row.cascade[_level_name(fraction, total)] = c
    if seeds > 1 and judges:
        runs = [images, *(again(clf, seed + i) for i in range(1, seeds))]
        pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))]
        cos = torch.stack([feature_similarity(judges, runs[i], runs[j]) for i, j in pairs]).mean(0)
        ssims = torch.stack([ssim(runs[i], runs[j]) for i, j in pairs]).mean(0)
        for row, c, s_ in zip(rows, cos.tolist(), ssims.tolist()):
            row.seed_similarity, row.seed_ssim = c, s_
    natural = _naturalness_model(naturalness_model, judges, clf, dev)
    if natural is not None:
        for row, v in zip(rows, naturalness(natural, images).tolist()):
            row.naturalness = v
    for row in rows:
        row.flags = judge_row(row, thresholds)
    report = SanityReport(rows=rows, thresholds=thresholds, evaluators=[j.name for j in judges],
                          naturalness_model=None if natural is None else natural.name,
                          seeds=[seed + i for i in range(seeds)])
    result.sanity = report  # type: ignore[attr-defined]
    result.extra["sanity"] = report.to_dict()
    return report


def judge_row(row: SanityRow, thresholds: SanityThresholds) -> tuple[str, ...]:
    """The flags a row's measurements raise (checks not computed raise none)."""
    flags = []
    if row.randomized is not None and row.randomized >= thresholds.randomization:
        flags.append("randomization")
    if any(v >= thresholds.randomization for v in row.cascade.values()):
        flags.append("cascade")
    if row.transfer_rank is not None and row.transfer_rank > thresholds.transfer_rank:
        flags.append("transfer")
    if row.naturalness is not None and row.naturalness > thresholds.naturalness:
        flags.append("naturalness")
    return tuple(flags)


def _transfer(images: torch.Tensor, result: _Result, judges: Sequence[Classifier],
              dev: torch.device) -> list[tuple[float, int]]:
    rows = score(list(judges), images, list(result.targets), device=dev)
    out = []
    for k in range(len(images)):
        mine = [r for r in rows if r["image"] == k]
        out.append((sum(r["prob"] for r in mine) / len(mine), min(r["rank"] for r in mine)))
    return out


def _naturalness_model(spec: str | Classifier | nn.Module | None, judges: Sequence[Classifier], clf: Classifier,
                       dev: torch.device) -> Classifier | None:
    if spec is not None:
        return as_evaluator(spec).to(dev).eval()
    for candidate in (*judges, clf):
        if batchnorm_layers(candidate):
            return candidate.eval()
    return None
