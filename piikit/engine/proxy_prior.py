"""A feature-statistics prior borrowed from another network, for models without BatchNorm.

DeepInversion's strongest prior (:class:`~piikit.engine.priors.BatchNormPrior`) matches the
statistics of every BatchNorm layer's input to the layer's running statistics, so it needs a
model *with* BatchNorm; ViTs and MLP-Mixers have none, and PII was made for them. SMI (Hu et
al., "Sparse Model Inversion", ICML 2024) inverts ViTs with the BatchNorm statistics of a
*proxy* CNN trained on the same data: the image being optimized is also forwarded through the
proxy, and the proxy's BatchNorm prior is added to the inverted model's own loss. The proxy
says what natural images of that data look like to a network; the inverted model still says
which class.

:class:`ProxyBatchNormPrior` is that term: each step it forwards the copies the inverted model
saw (``Batch.inputs``: the same jitter and flips) through the proxy and returns the proxy's
BatchNorm prior on them. ``refine(vit, init=result, prior_model=cnn)`` uses it in place of the
model's own BatchNorm prior.

>>> term = ProxyBatchNormPrior(piikit.load_model("efficientnet_lite0"), weight=1e-4)  # doctest: +SKIP
>>> refined = piikit.refine("vit_base_patch16_224", init=pii, terms=[term], bn_prior="off")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from piikit.device import module_device
from piikit.engine.objectives import Batch, LossTerm
from piikit.errors import UnsupportedModelError
from piikit.models import Classifier, frozen
from piikit.engine.priors import BatchNormPrior, has_batchnorm

__all__ = ["ProxyBatchNormPrior"]


class ProxyBatchNormPrior(LossTerm):
    """DeepInversion's BatchNorm prior measured in a proxy network that has BatchNorm.

    Each step the inverted model's inputs (the augmented copies, pixels in [0, 1]) go through
    ``proxy`` too (its own normalization and resizing apply), and the term is
    ``Σ_k m_k (‖μ_k(x) − μ_k‖₂ + ‖σ²_k(x) − σ²_k‖₂)`` over the proxy's BatchNorm layers, as
    :class:`~piikit.engine.priors.BatchNormPrior` computes it (``m_k``:
    ``first_layer_multiplier`` on the first layer, 1 elsewhere). The gradient reaches the
    image through the proxy; the proxy's weights are frozen and its running statistics left
    untouched (it runs in eval mode, restored afterwards).

    Args:
        proxy: a :class:`~piikit.Classifier` (see :func:`piikit.load_model`) with BatchNorm
            layers, taking the inverted model's channel count; it is moved to the inverted
            model's device for the run.
        weight: the multiplier (DeepInversion: 0.01; :func:`piikit.refine` passes its
            ``bn_weight``).
        first_layer_multiplier: extra factor on the proxy's first BatchNorm layer (DeepInversion: 10).
        name: history key (default ``"proxy_bn"``).

    Raises:
        UnsupportedModelError: the proxy has no BatchNorm layer with running statistics.
    """

    def __init__(self, proxy: Classifier, weight: float = 1.0, first_layer_multiplier: float = 1.0, *,
                 name: str = "proxy_bn") -> None:
        super().__init__(weight)
        if not isinstance(proxy, Classifier):
            raise TypeError(f"proxy must be a piikit Classifier (piikit.load_model(...)), got {type(proxy).__name__}")
        if not has_batchnorm(proxy):
            raise UnsupportedModelError(
                f"the proxy {proxy.name} has no BatchNorm layer with running statistics, so it has no statistics to "
                "lend; pick a network with BatchNorm trained on the same data (a CNN)")
        self.proxy = proxy
        self.name = name
        self._prior = BatchNormPrior(1.0, first_layer_multiplier, name=name)

    @property
    def first_layer_multiplier(self) -> float:
        return self._prior.first_layer_multiplier

    @contextlib.contextmanager
    def _hooked(self, model: nn.Module) -> Iterator[None]:
        self.proxy.to(module_device(model))
        with frozen(self.proxy), self._prior.hooks(self.proxy):
            yield

    def hooks(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        """The proxy's BatchNorm hooks (``model``, the inverted one, only gives the device)."""
        return self._hooked(model)

    def __call__(self, batch: Batch) -> torch.Tensor:
        if batch.inputs.shape[1] != self.proxy.in_chans:
            raise ValueError(f"the proxy {self.proxy.name} takes {self.proxy.in_chans}-channel images, the inverted "
                             f"model {batch.inputs.shape[1]}-channel ones")
        self.proxy(batch.inputs)
        return self._prior(batch)

    def __repr__(self) -> str:
        return (f"ProxyBatchNormPrior({self.proxy.name}, weight={self.weight}, "
                f"first_layer_multiplier={self.first_layer_multiplier})")
