"""Image priors: total variation, the L2 image prior and the BatchNorm statistics prior.

Plug-In Inversion needs none of these (PII §3.2: ColorShift makes them unnecessary); they
are here for DeepInversion (Yin et al. 2020; :mod:`piikit.engine.deepinversion`) and for the TV
ablation of PII Fig. 4 (``invert(..., tv_weight=...)``). Each prior is a
:class:`~piikit.engine.objectives.LossTerm`: the step loop adds ``weight * value`` to the loss and
records the unweighted value under the term's ``name`` in the result's history.

DeepInversion's objective (PII §2.2)::

    CE + a_tv · R_TV(x) + a_l2 · R_l2(x) + a_f · Σ_k ‖μ_k(x) − μ_k‖₂ + ‖σ²_k(x) − σ²_k‖₂

where μ_k(x), σ²_k(x) are the batch mean and variance of the input of the k-th BatchNorm
layer and μ_k, σ²_k its stored running statistics.

The functions :func:`tv_loss`, :func:`l2_norm` and :func:`batchnorm_layers` are
the plain maths, usable on their own.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
from torch import nn

from piikit.errors import UnsupportedModelError
from piikit.models.folding import FoldedNorm, folded_norms
from piikit.models.layers import forward_hooks
from piikit.engine.objectives import Batch, LossTerm

__all__ = [
    "TotalVariation",
    "L2Prior",
    "BatchNormPrior",
    "tv_loss",
    "l2_norm",
    "batchnorm_layers",
    "has_batchnorm",
    "feature_statistics",
]


def _neighbour_differences(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The four neighbour differences of DeepInversion's TV: right, down, down-right and
    down-left (the last two are the diagonals)."""
    return (
        x[..., :, 1:] - x[..., :, :-1],  # x[i, j+1] - x[i, j]
        x[..., 1:, :] - x[..., :-1, :],  # x[i+1, j] - x[i, j]
        x[..., 1:, 1:] - x[..., :-1, :-1],  # x[i+1, j+1] - x[i, j]
        x[..., 1:, :-1] - x[..., :-1, 1:],  # x[i+1, j] - x[i, j+1]
    )


def tv_loss(images: torch.Tensor, p: Literal[1, 2] = 2) -> torch.Tensor:
    """The TV *prior*: total variation over four neighbour directions (DeepInversion's
    formulation), a loss to minimise. The TV *metric* that reports an image's noise is
    :func:`piikit.models.scoring.tv_per_pixel` (a different formula and scale).

    For each of the four differences d (horizontal, vertical and both diagonals):

    * ``p=2``: the L2 norm of d over each image (channels and pixels), summed over the four
      directions and averaged over the images: ``mean_k Σ_d ‖d(x_k)‖₂``. DeepInversion's
      ImageNet setting uses this variant with weight 1e-4.
    * ``p=1``: the mean absolute difference, summed over the four directions:
      ``Σ_d mean |d(x)|`` (a per-pixel scale, independent of image size).

    Averaging over images (rather than one norm over the whole batch) keeps each image's
    gradient what it would be in a run of its own.

    Args:
        images: K×C×H×W.
        p: 1 or 2.

    Returns:
        A 0-d tensor.

    >>> tv_loss(torch.zeros(2, 3, 8, 8))
    tensor(0.)
    """
    if images.ndim != 4:
        raise ValueError(f"images must be K×C×H×W, got shape {tuple(images.shape)}")
    diffs = _neighbour_differences(images.float())
    if p == 2:
        return sum(d.flatten(1).norm(dim=1) for d in diffs).mean()  # type: ignore[union-attr]
    if p == 1:
        return sum(d.abs().mean() for d in diffs)  # type: ignore[return-value]
    raise ValueError(f"p must be 1 or 2, got {p!r}")


def l2_norm(images: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """The L2 image prior: ``‖x_k‖₂`` (or ``‖x_k‖₂²``) of each image, averaged over images.

    >>> l2_norm(torch.full((1, 1, 2, 2), 0.5))
    tensor(1.)
    """
    norms = images.float().flatten(1).norm(dim=1)
    return (norms.square() if squared else norms).mean()


def _normalizer(
    mean: Sequence[float] | torch.Tensor | None, std: Sequence[float] | torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    def as_tensor(v: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
        return None if v is None else torch.as_tensor(v, dtype=torch.float32).detach().reshape(1, -1, 1, 1)

    return as_tensor(mean), as_tensor(std)


def _normalized(images: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    x = images.float()
    if mean is not None:
        x = x - mean.to(x.device)
    if std is not None:
        x = x / std.to(x.device)
    return x


class TotalVariation(LossTerm):
    """Total variation of the optimized images as a loss term (see :func:`tv_loss`).

    It sees the images before any augmentation (so a jitter's wrap-around seam is never
    penalised), once per step however the ensemble is split into passes.

    Args:
        weight: the multiplier; DeepInversion's ImageNet setting: 1e-4 (``p=2``) on the
            network's normalized input.
        p: 2 (L2 variant) or 1 (L1 variant).
        std: if given, the images are divided by it per channel first, i.e. TV is measured
            in the model's normalized input space, as DeepInversion does. None: pixel space
            [0, 1] (what ``invert(..., tv_weight=...)`` uses for the PII Fig. 4 ablation).
        name: the key of this term in the result's history (default ``"tv"`` / ``"tv_l1"``).

    >>> result = invert(model, "volcano", terms=[TotalVariation(0.01)])  # doctest: +SKIP
    >>> result.history["tv"]  # doctest: +SKIP
    """

    def __init__(
        self,
        weight: float = 1.0,
        p: Literal[1, 2] = 2,
        *,
        std: Sequence[float] | torch.Tensor | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(weight)
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        self.p: Literal[1, 2] = p
        _, self.std = _normalizer(None, std)
        self.name = name or ("tv" if p == 2 else "tv_l1")

    def __call__(self, batch: Batch) -> torch.Tensor:
        return tv_loss(_normalized(batch.images, None, self.std), self.p)

    def __repr__(self) -> str:
        return f"TotalVariation(weight={self.weight}, p={self.p}, normalized={self.std is not None})"


class L2Prior(LossTerm):
    """The L2 image prior ``‖x‖₂`` per image, averaged over images (see :func:`l2_norm`).

    Args:
        weight: the multiplier; DeepInversion's ImageNet setting: 1e-5 on the normalized
            input.
        mean, std: if given, the norm is taken of ``(x - mean) / std`` (the model's
            normalized input, as DeepInversion does: the prior then pulls towards the data
            mean rather than towards black). None: pixel space.
        squared: ``‖x‖₂²`` instead of ``‖x‖₂``.
        name: history key (default ``"l2"``).
    """

    def __init__(
        self,
        weight: float = 1.0,
        *,
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
        squared: bool = False,
        name: str = "l2",
    ) -> None:
        super().__init__(weight)
        self.mean, self.std = _normalizer(mean, std)
        self.squared = bool(squared)
        self.name = name

    def __call__(self, batch: Batch) -> torch.Tensor:
        return l2_norm(_normalized(batch.images, self.mean, self.std), self.squared)

    def __repr__(self) -> str:
        return f"L2Prior(weight={self.weight}, squared={self.squared}, normalized={self.std is not None})"


# --------------------------------------------------------------------------- BatchNorm prior
def _is_batchnorm(module: nn.Module) -> bool:
    """BatchNorm1d/2d/3d, SyncBatchNorm and timm's BatchNormAct2d (all ``_BatchNorm``
    subclasses), plus frozen variants (torchvision's / timm's ``FrozenBatchNorm2d``) that
    keep running statistics as plain buffers."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.track_running_stats and module.running_mean is not None and module.running_var is not None
    return (
        "BatchNorm" in type(module).__name__
        and isinstance(getattr(module, "running_mean", None), torch.Tensor)
        and isinstance(getattr(module, "running_var", None), torch.Tensor)
    )


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every BatchNorm layer with running statistics, in
    registration order."""
    return [(name, m) for name, m in model.named_modules() if _is_batchnorm(m)]


def feature_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of a BatchNorm layer's input over every axis but
    the channels (N and L / H×W / D×H×W): what DeepInversion compares with the running
    statistics (also measured per image by :mod:`piikit.analysis.sanity`)."""
    x = x.float()
    dims = [0, *range(2, x.ndim)]
    return x.mean(dim=dims), x.var(dim=dims, unbiased=False)


def _centred_statistics(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``z``, a BatchNorm input minus its running
    mean, from the sums of ``z`` and ``z²``. On a CPU, ``var`` over the batch and spatial
    axes of an N×C×H×W tensor (a strided reduction) with its backward took more time than
    the whole network's forward and backward on Lite0; two sums take a fifth of it. Centring
    on the running mean first keeps ``E[z²] − E[z]²`` free of cancellation."""
    dims = [0, *range(2, z.ndim)]
    n = z.numel() // z.shape[1]
    mean = z.sum(dim=dims) / n
    return mean, z.square().sum(dim=dims) / n - mean.square()


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the BatchNorm prior can be used on ``model``."""
    return any(_is_batchnorm(m) for m in model.modules())


class BatchNormPrior(LossTerm):
    """DeepInversion's feature-statistics prior on every BatchNorm layer.

    For each BatchNorm layer k, with ``μ_k(x)``, ``σ²_k(x)`` the per-channel mean and (biased)
    variance of the layer's *input* over the batch and all spatial positions, and ``μ_k``,
    ``σ²_k`` its running statistics::

        R_feat = Σ_k m_k (‖μ_k(x) − μ_k‖₂ + ‖σ²_k(x) − σ²_k‖₂)

    with ``m_k = first_layer_multiplier`` for the first layer the input reaches (execution
    order) and 1 for the others. DeepInversion's ImageNet setting: weight 0.01, first-layer
    multiplier 10 (the first layer sees the image almost directly, so matching its
    statistics constrains colour and contrast most).

    The statistics are taken over every sample of one forward pass. The step loop splits an
    batch into passes when ``micro_batch`` is smaller than it; the prior is then the mean of the
    per-pass values, which is only an approximation of the full-batch prior (statistics of
    parts are not the statistics of the whole): a warning says so once.
    :func:`piikit.refinement.deepinversion.refine` uses an ensemble of 1, so it is exact there.

    On a copy with its BatchNorms folded into the convolutions (``fold_bn``,
    :mod:`piikit.models.folding`) the hooks sit on those convolutions and recover each norm's
    input statistics from their output: the same prior, up to rounding, for fewer passes.

    Forward hooks are registered only inside :meth:`hooks` (the step loop enters it for
    the run) and are always removed on exit, also after an error.

    Args:
        weight: the multiplier a_f (DeepInversion: 0.01).
        first_layer_multiplier: extra factor on the first BatchNorm layer (DeepInversion: 10).
        name: history key (default ``"bn"``).

    Raises:
        UnsupportedModelError: from :meth:`hooks` if the model has no BatchNorm layer with
            running statistics (ViTs, MLP-Mixers, GroupNorm/LayerNorm CNNs).
    """

    def __init__(self, weight: float = 1.0, first_layer_multiplier: float = 1.0, *, name: str = "bn") -> None:
        super().__init__(weight)
        self.first_layer_multiplier = float(first_layer_multiplier)
        self.name = name
        self._losses: list[torch.Tensor] = []
        self._warned_partial = False

    def _clear(self, module: nn.Module, args: object) -> None:
        # A new forward pass of the whole model starts: forget the previous pass's values,
        # so a stray forward (e.g. scoring the final image) can never leak into a step.
        self._losses = []

    def _add(self, centred: torch.Tensor, running_var: torch.Tensor, scale: torch.Tensor | None = None) -> None:
        """The term of one layer, from its input minus the running mean (times ``scale`` per channel, if given)."""
        mean_offset, var = _centred_statistics(centred)
        if scale is not None:
            mean_offset, var = mean_offset / scale, var / scale.square()
        loss = torch.linalg.vector_norm(mean_offset) + torch.linalg.vector_norm(var - running_var)
        if not self._losses:
            loss = loss * self.first_layer_multiplier
        self._losses.append(loss)

    def _hook(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: object) -> None:
        shape = (-1, *[1] * (args[0].ndim - 2))
        running_mean = module.running_mean.float().view(shape)  # type: ignore[union-attr]
        self._add(args[0].float() - running_mean, module.running_var.float())  # type: ignore[union-attr]

    def _folded_hook(self, fold: FoldedNorm) -> Callable[[nn.Module, object, torch.Tensor], None]:
        # The norm's input x is gone; the convolution returns y = a·x + b with b = bias − a·running_mean
        # (piikit.models.folding), so y − bias = a·(x − running_mean): its statistics, divided by a
        # and a², are the norm's. (y − bias is a new tensor: the activation after the
        # convolution may work in place on y, as ReLU6 does in Lite0.)
        bias = fold.bias.view(-1, 1, 1)  # folding pairs Conv2d only

        def hook(module: nn.Module, args: object, output: torch.Tensor) -> None:
            self._add(output.float() - bias, fold.running_var, fold.scale)
        return hook

    @contextlib.contextmanager
    def _hooked(self, model: nn.Module) -> Iterator[None]:
        folds = folded_norms(model)
        neutralized = {id(f.norm) for f in folds if f.norm is not None}
        layers = [m for _, m in batchnorm_layers(model) if id(m) not in neutralized]
        if not layers and not folds:
            raise UnsupportedModelError(
                f"{getattr(model, 'name', type(model).__name__)} has no BatchNorm layer with running statistics, "
                "so the BatchNorm feature-statistics prior cannot be used (ViTs, MLP-Mixers and GroupNorm/LayerNorm "
                "models have none); use TV/L2 priors only"
            )
        hooks = [(module, self._hook) for module in layers] + [(f.conv, self._folded_hook(f)) for f in folds]
        try:
            with forward_hooks(hooks, pre_hooks=[(model, self._clear)]):
                self._losses = []
                yield
        finally:
            self._losses = []

    def hooks(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        return self._hooked(model)

    def __call__(self, batch: Batch) -> torch.Tensor:
        if not self._losses:
            # Never a silent zero: the hooks are missing or no BatchNorm layer ran.
            raise RuntimeError(
                "the BatchNorm prior saw no BatchNorm layer in this forward pass; is it used outside "
                "its hooks() context (the step loop enters it for you)?"
            )
        k = batch.images.shape[0]
        if batch.inputs.shape[0] < k * batch.ensemble and not self._warned_partial:
            self._warned_partial = True
            warnings.warn(
                "the BatchNorm prior is computed per micro-batch (micro_batch < ensemble): its statistics are those "
                "of each pass, not of the whole batch, so the prior is only approximate; use micro_batch=None for "
                "the exact prior",
                stacklevel=2,
            )
        return torch.stack(self._losses).sum()

    def __repr__(self) -> str:
        return f"BatchNormPrior(weight={self.weight}, first_layer_multiplier={self.first_layer_multiplier})"
