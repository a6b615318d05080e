"""Small real classifiers of three families, trained offline on handwritten digits.

The paper's point is that one set of PII settings inverts CNNs, ViTs and MLP-Mixers alike
(PII §4.2, Figs. 7-8). Showing that needs *trained* models of each family; without a hub,
the only labelled images that install with a package are scikit-learn's bundled 8×8
digits (1,797 images, 10 classes). This module upsamples them to ``image_size`` pixels
(bilinear), holds out a seeded test split, and trains:

``cnn``
    three conv-BatchNorm-ReLU blocks with global average pooling: accepts any input size,
    and has the BatchNorm statistics DeepInversion's prior needs;
``vit``
    a timm ``VisionTransformer`` (patch 8, 3 blocks, average-pooled tokens): fixed input size;
``mixer``
    a timm ``MlpMixer`` (patch 4, 3 blocks): fixed input size.

All three take one input channel (grey), normalized with mean = std = 0.5, and train in
seconds on 2 CPU cores. Weights are cached under ``~/.cache/piikit/digits`` (or
``cache_dir``), in a file named after the architecture and a hash of the training settings,
with the test accuracy and training time stored beside the tensors.

>>> models = train_digits_models()  # doctest: +SKIP
>>> models["vit"].test_accuracy  # doctest: +SKIP
0.94
>>> piikit.invert(models["vit"].classifier, ["3", "8"], "preview", image_size=32, jitter=2)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from piikit.models import Classifier

__all__ = [
    "ARCHITECTURES",
    "DigitsData",
    "DigitsTraining",
    "TrainedDigitsModel",
    "build_digits_model",
    "load_digits_data",
    "train_digits_model",
    "train_digits_models",
]

Architecture = Literal["cnn", "vit", "mixer"]
ARCHITECTURES: dict[str, str] = {
    "cnn": "CNN with BatchNorm (3 conv blocks)",
    "vit": "Vision Transformer (timm, patch 8, 3 blocks)",
    "mixer": "MLP-Mixer (timm, patch 4, 3 blocks)",
}
CLASS_NAMES = tuple(str(d) for d in range(10))
MEAN, STD = (0.5,), (0.5,)
_FORMAT = 1  # bump when the architectures change, so old cache files are not reused


@dataclass(frozen=True)
class DigitsTraining:
    """How the digits models are trained; one setting for all three architectures."""

    image_size: int = 32  # the 8×8 digits are upsampled (bilinear) to this side
    test_fraction: float = 0.2  # held out, never trained on
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3  # AdamW peak lr of a one-cycle schedule
    weight_decay: float = 0.05
    max_shift: int = 2  # random roll of up to this many pixels per batch (cheap augmentation)
    seed: int = 0  # split, initialization, shuffling and shifts

    def __post_init__(self) -> None:
        if self.image_size < 16 or self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 and >= 16, got {self.image_size}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.max_shift < 0:
            raise ValueError("epochs and batch_size must be >= 1, lr > 0 and max_shift >= 0")

    def key(self, arch: str) -> str:
        """The cache key: architecture, format version and every training setting."""
        text = json.dumps({"arch": arch, "format": _FORMAT, **dataclasses.asdict(self)}, sort_keys=True)
        return f"{arch}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class DigitsData:
    """The digits as N×1×S×S float images in [0, 1] and their labels, split once."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


@dataclass(frozen=True)
class TrainedDigitsModel:
    """A trained digits classifier and how good it is on the held-out split."""

    arch: str
    classifier: Classifier  # eval mode, frozen; 1-channel [0, 1] images in, 10 logits out
    test_accuracy: float
    train_seconds: float  # when it was trained (also for a model read from the cache)
    from_cache: bool
    training: DigitsTraining

    @property
    def description(self) -> str:
        return ARCHITECTURES[self.arch]


def load_digits_data(image_size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """scikit-learn's bundled digits, upsampled to ``image_size`` and split by a seeded shuffle.

    Raises:
        ImportError: scikit-learn is not installed (``pip install scikit-learn``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("the digits models need scikit-learn: pip install scikit-learn") from e
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # pixel values are 0..16
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_test = round(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return DigitsData(images[train], labels[train], images[test], labels[test])


def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def build_digits_model(arch: Architecture, image_size: int = 32) -> nn.Module:
    """An untrained digits model of one family (1 input channel, 10 classes)."""
    from timm.models.mlp_mixer import MlpMixer
    from timm.models.vision_transformer import VisionTransformer

    if arch == "cnn":
        return nn.Sequential(
            *_conv_block(1, 16), nn.MaxPool2d(2), *_conv_block(16, 32), nn.MaxPool2d(2), *_conv_block(32, 64),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
        )
    if arch == "vit":
        # Average-pooled tokens instead of a class token: small ViTs learn much faster so.
        return VisionTransformer(
            img_size=image_size, patch_size=8, in_chans=1, num_classes=10, embed_dim=64, depth=3, num_heads=4,
            mlp_ratio=2.0, class_token=False, global_pool="avg",
        )
    if arch == "mixer":
        return MlpMixer(num_classes=10, img_size=image_size, in_chans=1, patch_size=4, num_blocks=3, embed_dim=48)
    raise ValueError(f"unknown digits architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def _classifier(net: nn.Module, arch: str, image_size: int) -> Classifier:
    net.eval().requires_grad_(False)
    return Classifier(
        net, mean=MEAN, std=STD, input_size=(image_size, image_size), fixed_input_size=arch != "cnn",
        num_classes=10, class_names=CLASS_NAMES, name=f"digits_{arch}",
    )


@torch.no_grad()
def _accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    logits = net(((images - MEAN[0]) / STD[0]).to(device))
    return float((logits.argmax(1).cpu() == labels).float().mean())


def _train(net: nn.Module, data: DigitsData, cfg: DigitsTraining, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    n = len(data.train_images)
    batches = -(-n // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * batches)
    net.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(batches):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = data.train_images[idx]
            if cfg.max_shift:
                dy, dx = (torch.randint(-cfg.max_shift, cfg.max_shift + 1, (2,), generator=gen)).tolist()
                x = x.roll((dy, dx), dims=(2, 3))  # the upsampled digits have an empty border
            loss = F.cross_entropy(net(((x - MEAN[0]) / STD[0]).to(device)), data.train_labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "piikit" / "digits"


def train_digits_model(
    arch: Architecture,
    training: DigitsTraining | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    retrain: bool = False,
    device: str | torch.device | None = None,
) -> TrainedDigitsModel:
    """Train one digits model, or read it from the cache if these settings were trained before.

    Args:
        arch: ``"cnn"``, ``"vit"`` or ``"mixer"`` (see :data:`ARCHITECTURES`).
        training: the settings (default :class:`DigitsTraining`); they key the cache.
        cache_dir: where weights are kept (default ``~/.cache/piikit/digits``).
        retrain: train even if a cached file exists (and overwrite it).
        device: where to train (default: the CPU; the models are tiny).

    Returns:
        A :class:`TrainedDigitsModel` whose ``classifier`` is on the CPU, ready for
        :func:`piikit.invert`.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    cfg = training or DigitsTraining()
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown digits architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    path = _cache_root(cache_dir) / f"{cfg.key(arch)}.safetensors"
    data = load_digits_data(cfg.image_size, cfg.test_fraction, cfg.seed)
    # Initialization draws from torch's global generator (timm's init functions take no
    # generator); fork it so seeding here leaves the caller's random state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_digits_model(arch, cfg.image_size)
    if path.is_file() and not retrain:
        net.load_state_dict(load_file(path))
        net.eval()
        with safe_open(path, framework="pt") as f:
            meta = f.metadata()
        seconds, cached = float(meta["train_seconds"]), True
    else:
        dev = torch.device(device) if device is not None else torch.device("cpu")
        start = time.perf_counter()
        _train(net.to(dev), data, cfg, dev)
        seconds, cached = time.perf_counter() - start, False
        net = net.cpu()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")  # two processes may train the same model at once
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp,
                  metadata={"train_seconds": f"{seconds:.3f}", "settings": json.dumps(dataclasses.asdict(cfg))})
        tmp.replace(path)  # atomic: a half-written file is never read as a model
    # Measured each time rather than stored: cheap, and it cannot go stale.
    accuracy = _accuracy(net, data.test_images, data.test_labels, torch.device("cpu"))
    return TrainedDigitsModel(arch, _classifier(net, arch, cfg.image_size), accuracy, seconds, cached, cfg)


def train_digits_models(
    archs: Sequence[Architecture] = ("cnn", "vit", "mixer"),
    training: DigitsTraining | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    retrain: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, TrainedDigitsModel]:
    """:func:`train_digits_model` for several architectures with the same settings, by name."""
    return {arch: train_digits_model(arch, training, cache_dir=cache_dir, retrain=retrain, device=device) for arch in archs}
