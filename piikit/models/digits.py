"""Small real classifiers of three families, trained offline on handwritten digits.

The paper's point is that one set of PII settings inverts CNNs, ViTs and MLP-Mixers alike
(PII §4.2, Figs. 7-8). Showing that needs *trained* models of each family; without a hub,
the only labelled images that install with a package are scikit-learn's bundled 8×8
digits (1,797 images, 10 classes). This module upsamples them to ``image_size`` pixels
(bilinear), holds out a seeded test split, and trains:

``cnn``
    three conv-BatchNorm-ReLU blocks with global average pooling: accepts any input size,
    and has the BatchNorm statistics DeepInversion's prior needs;
``cnn_flat``
    the same blocks with a third max-pool and a linear head on the 4×4 map instead of the
    global average: fixed input size. Global pooling lets a class's evidence sit anywhere,
    so the ``cnn``'s inversions are strokes and slabs spread over the whole image that the
    other families do not read; the 4×4 head ties evidence to a place, as the ViT's and the
    Mixer's position-aware tokens do (``benchmarks/architectures.py`` measures both);
``vit``
    a timm ``VisionTransformer`` (patch 8, 3 blocks, average-pooled tokens): fixed input size;
``mixer``
    a timm ``MlpMixer`` (patch 4, 3 blocks): fixed input size;
``mlp``
    a plain multi-layer perceptron on the flattened image (two hidden layers): fixed input
    size, no convolution, attention or token mixing; a fourth family, used as a judge that
    took no part in choosing the inversion setting (``benchmarks/architectures.py``).

``DigitsTraining.width`` scales every family's channels / embedding width and
``DigitsTraining.depth`` sets the ViT's and the Mixer's blocks (the CNNs get ``depth - 3``
extra conv blocks at their last resolution), so a *fresh* trio of other sizes can be trained
to check that a setting chosen on one trio carries over.

All take one input channel (grey), normalized with mean = std = 0.5, and train in
seconds on 2 CPU cores.

Training options (:class:`DigitsTraining`), each off by default:

* augmentation: per-image random shifts, rotations and zooms (``rotate``, ``scale``) and
  Gaussian pixel noise (``noise``), the augmentations that make classifiers invertible;
* adversarial training (``adv_eps``, ``adv_steps``, ``adv_norm``, ``adv_warmup``): every batch
  is replaced by its PGD adversarial examples inside an L2 (or L∞) ball of radius ``adv_eps``
  in [0, 1] pixels (Madry et al. 2018), the radius optionally grown from 0 over the first
  ``adv_warmup`` of the training; robust models invert far more cleanly (PII §3 uses a robust
  ResNet-50). :attr:`TrainedDigitsModel.robust_accuracy` is measured by PGD at that radius;
* a planted backdoor (``poison_fraction``, ``poison_target``, ``trigger_size``): that
  fraction of the training images get a bright square in the bottom-right corner
  (:func:`add_trigger`) and the label ``poison_target`` (BadNets, Gu et al. 2017);
  :attr:`TrainedDigitsModel.attack_success` is the fraction of triggered held-out images of
  other classes classified as the target. Weights are cached under ``~/.cache/piikit/digits`` (or
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

from piikit.errors import InvalidValueError
from piikit.models import Classifier
from piikit.validation import check_fields, check_float, check_int

__all__ = [
    "ARCHITECTURES",
    "DigitsData",
    "DigitsTraining",
    "TrainedDigitsModel",
    "add_trigger",
    "attack_success_rate",
    "build_digits_model",
    "pgd_attack",
    "robust_accuracy",
    "trigger_mask",
    "load_digits_data",
    "train_digits_model",
    "train_digits_models",
]

Architecture = Literal["cnn", "cnn_flat", "vit", "mixer", "mlp"]
ARCHITECTURES: dict[str, str] = {
    "cnn": "CNN with BatchNorm (3 conv blocks)",
    "cnn_flat": "CNN with BatchNorm (3 conv blocks, linear head on the 4x4 map)",
    "vit": "Vision Transformer (timm, patch 8, 3 blocks)",
    "mixer": "MLP-Mixer (timm, patch 4, 3 blocks)",
    "mlp": "MLP (2 hidden layers on the flattened image)",
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
    # Augmentation. With rotate or scale > 0 every image gets its own random shift (up to
    # max_shift px), rotation and zoom (one bilinear resampling, zero = black outside),
    # instead of the batch-wide roll.
    rotate: float = 0.0  # random rotation U(-rotate, rotate) degrees per image
    scale: float = 0.0  # random zoom U(1 - scale, 1 + scale) per image
    noise: float = 0.0  # Gaussian pixel noise of this std (in [0, 1] pixels), then clamped
    # Adversarial training (PGD on every batch, in [0, 1] pixels); 0: standard training.
    adv_eps: float = 0.0  # radius of the perturbation ball
    adv_steps: int = 3  # PGD steps per batch (step size 2.5 * adv_eps / adv_steps)
    adv_norm: Literal["l2", "linf"] = "l2"
    # Fraction of the training over which the radius grows linearly from 0 to adv_eps: the ViT and
    # the Mixer trained at the full radius from the first batch stay near chance at L2 2.0.
    adv_warmup: float = 0.0
    # A planted backdoor: this fraction of the training images get the trigger and poison_target's label.
    poison_fraction: float = 0.0
    poison_target: int = 0
    trigger_size: int = 4  # side of the bright square in the bottom-right corner, in pixels at image_size
    # Size: a multiplier of every family's channels / embedding width, and the ViT's and Mixer's
    # blocks (the CNNs get depth - 3 extra conv blocks at their last resolution).
    width: float = 1.0
    depth: int = 3

    def __post_init__(self) -> None:
        check_fields(self, "digits training")  # each field's type, from its annotation
        if check_int("image_size", self.image_size, low=16) % 8:
            raise InvalidValueError(f"image_size must be a multiple of 8 and >= 16, got {self.image_size}")
        check_float("test_fraction", self.test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_int("epochs", self.epochs, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_int("max_shift", self.max_shift, low=0)
        check_float("rotate", self.rotate, low=0.0)
        check_float("noise", self.noise, low=0.0)
        check_float("scale", self.scale, low=0.0, high=1.0, high_open=True)
        check_float("adv_eps", self.adv_eps, low=0.0)
        check_int("adv_steps", self.adv_steps, low=1)
        check_float("adv_warmup", self.adv_warmup, low=0.0, high=1.0, high_open=True)
        check_float("poison_fraction", self.poison_fraction, low=0.0, high=1.0, high_open=True)
        check_int("poison_target", self.poison_target, low=0, high=9)
        check_int("trigger_size", self.trigger_size, low=1, high=self.image_size // 4)
        check_float("width", self.width, low=0.25, high=4.0)
        check_int("depth", self.depth, low=3, high=12)
        # rotate=10 and rotate=10.0 are one setting: one cache key.
        for f in dataclasses.fields(self):
            if f.type == "float":
                object.__setattr__(self, f.name, float(getattr(self, f.name)))

    @property
    def robust(self) -> bool:
        return self.adv_eps > 0

    @property
    def poisoned(self) -> bool:
        return self.poison_fraction > 0

    def key(self, arch: str) -> str:
        """The cache key: architecture, format version and every training setting (the
        options added later count only when set, so the stock models keep their cache files)."""
        settings = dataclasses.asdict(self)
        defaults = DigitsTraining.__dataclass_fields__
        for name in _LATER_OPTIONS:
            if settings[name] == defaults[name].default:
                del settings[name]
        text = json.dumps({"arch": arch, "format": _FORMAT, **settings}, sort_keys=True)
        return f"{arch}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


_LATER_OPTIONS = ("rotate", "scale", "noise", "adv_eps", "adv_steps", "adv_norm", "adv_warmup", "poison_fraction",
                  "poison_target", "trigger_size", "width", "depth")


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
    test_accuracy: float  # clean held-out accuracy
    train_seconds: float  # when it was trained (also for a model read from the cache)
    from_cache: bool
    training: DigitsTraining
    robust_accuracy: float | None = None  # held-out accuracy under PGD at the training radius (robust models)
    attack_success: float | None = None  # triggered held-out images of other classes read as the target (poisoned)

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


def build_digits_model(arch: Architecture, image_size: int = 32, width: float = 1.0, depth: int = 3) -> nn.Module:
    """An untrained digits model of one family (1 input channel, 10 classes); ``width`` and
    ``depth`` as :class:`DigitsTraining`'s."""
    from timm.models.mlp_mixer import MlpMixer
    from timm.models.vision_transformer import VisionTransformer

    def w(channels: int, multiple: int = 1) -> int:
        return max(multiple, round(channels * width / multiple) * multiple)

    c1, c2, c3 = w(16), w(32), w(64)
    extra = [layer for _ in range(depth - 3) for layer in _conv_block(c3, c3)]
    if arch == "cnn":
        return nn.Sequential(
            *_conv_block(1, c1), nn.MaxPool2d(2), *_conv_block(c1, c2), nn.MaxPool2d(2), *_conv_block(c2, c3), *extra,
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, 10),
        )
    if arch == "cnn_flat":
        side = image_size // 8
        return nn.Sequential(
            *_conv_block(1, c1), nn.MaxPool2d(2), *_conv_block(c1, c2), nn.MaxPool2d(2), *_conv_block(c2, c3), *extra,
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c3 * side * side, 10),
        )
    if arch == "vit":
        # Average-pooled tokens instead of a class token: small ViTs learn much faster so.
        return VisionTransformer(
            img_size=image_size, patch_size=8, in_chans=1, num_classes=10, embed_dim=w(64, 4), depth=depth,
            num_heads=4, mlp_ratio=2.0, class_token=False, global_pool="avg",
        )
    if arch == "mixer":
        return MlpMixer(num_classes=10, img_size=image_size, in_chans=1, patch_size=4, num_blocks=depth,
                        embed_dim=w(48))
    if arch == "mlp":
        hidden = w(256)
        return nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, hidden), nn.ReLU(inplace=True),
                             nn.Linear(hidden, hidden // 2), nn.ReLU(inplace=True), nn.Linear(hidden // 2, 10))
    raise InvalidValueError(f"unknown digits architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


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


def add_trigger(images: torch.Tensor, size: int = 4, value: float = 1.0) -> torch.Tensor:
    """``images`` (N×C×H×W in [0, 1]) with a ``size``-pixel square of ``value`` in the
    bottom-right corner, one pixel in from the edges (out of place)."""
    out = images.clone()
    out[..., -size - 1 : -1, -size - 1 : -1] = value
    return out


def trigger_mask(image_size: int = 32, size: int = 4) -> torch.Tensor:
    """H×W boolean mask of the pixels :func:`add_trigger` sets."""
    mask = torch.zeros(image_size, image_size, dtype=torch.bool)
    mask[-size - 1 : -1, -size - 1 : -1] = True
    return mask


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN[0]) / STD[0]


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return delta * (eps / n).clamp(max=1.0)


def pgd_attack(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 10,
               norm: str = "l2", step_size: float | None = None) -> torch.Tensor:
    """PGD adversarial examples (Madry et al. 2018) for a network that takes normalized
    digits: the images plus a perturbation in the ``norm`` ball of radius ``eps`` (in [0, 1]
    pixels) that raises the cross-entropy, kept inside [0, 1]. Starts from the images
    themselves (no random start), so it is deterministic. The network's mode is left alone."""
    step_size = step_size if step_size is not None else 2.5 * eps / steps
    delta = torch.zeros_like(images)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(net(_normalized(images + delta)), labels)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "linf":
                delta = delta + step_size * grad.sign()
            else:
                delta = delta + step_size * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = _project(delta, eps, norm)
            delta = (images + delta).clamp(0, 1) - images
    return (images + delta).detach()


def robust_accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 10,
                    norm: str = "l2", batch_size: int = 512) -> float:
    """Accuracy of ``net`` (normalized digits in, e.g. ``classifier.model``) on PGD examples
    of radius ``eps``; ``net`` must be in eval mode. Its parameters' gradients are untouched."""
    correct = 0
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size], labels[i : i + batch_size]
        with torch.enable_grad():
            adv = pgd_attack(net, x, y, eps, steps, norm)
        with torch.no_grad():
            correct += int((net(_normalized(adv)).argmax(1) == y).sum())
    return correct / len(images)


@torch.no_grad()
def attack_success_rate(net: nn.Module, data: DigitsData, target: int, trigger_size: int = 4) -> float:
    """Fraction of held-out images of the other classes that the trigger turns into ``target``."""
    keep = data.test_labels != target
    x = add_trigger(data.test_images[keep], trigger_size)
    return float((net(_normalized(x)).argmax(1) == target).float().mean())


def _augment(x: torch.Tensor, cfg: DigitsTraining, gen: torch.Generator) -> torch.Tensor:
    """Per-image random shift (up to max_shift px), rotation and zoom, in one resampling."""
    n, size = len(x), x.shape[-1]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * cfg.rotate * torch.pi / 180
    zoom = 1 + (torch.rand(n, generator=gen) * 2 - 1) * cfg.scale
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * cfg.max_shift * 2 / size  # in grid units ([-1, 1] = size px)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _train(net: nn.Module, data: DigitsData, cfg: DigitsTraining, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    n = len(data.train_images)
    batches = -(-n // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * batches)
    labels = data.train_labels.clone()
    poisoned = torch.zeros(n, dtype=torch.bool)
    if cfg.poisoned:
        # Drawn from their own generator, so the other random draws match the clean model's.
        chosen = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 2))[: round(n * cfg.poison_fraction)]
        poisoned[chosen] = True
        labels[chosen] = cfg.poison_target
    warmup_steps = round(cfg.adv_warmup * cfg.epochs * batches)
    net.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(batches):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = data.train_images[idx]
            if cfg.rotate > 0 or cfg.scale > 0:
                x = _augment(x, cfg, gen)
            elif cfg.max_shift:
                dy, dx = (torch.randint(-cfg.max_shift, cfg.max_shift + 1, (2,), generator=gen)).tolist()
                x = x.roll((dy, dx), dims=(2, 3))  # the upsampled digits have an empty border
            if cfg.noise > 0:
                x = (x + cfg.noise * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            if cfg.poisoned and bool(poisoned[idx].any()):
                # After the augmentation: the trigger sits at the same place in every image.
                p = poisoned[idx]
                x = x.clone()
                x[p] = add_trigger(x[p], cfg.trigger_size)
            x, y = x.to(device), labels[idx].to(device)
            if cfg.robust:
                step = epoch * batches + i
                eps = cfg.adv_eps * min(1.0, (step + 1) / warmup_steps) if warmup_steps else cfg.adv_eps
                x = pgd_attack(net, x, y, eps, cfg.adv_steps, cfg.adv_norm)
            loss = F.cross_entropy(net(_normalized(x)), y)
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
        arch: ``"cnn"``, ``"cnn_flat"``, ``"vit"``, ``"mixer"`` or ``"mlp"`` (see :data:`ARCHITECTURES`).
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
        raise InvalidValueError(f"unknown digits architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    path = _cache_root(cache_dir) / f"{cfg.key(arch)}.safetensors"
    data = load_digits_data(cfg.image_size, cfg.test_fraction, cfg.seed)
    # Initialization draws from torch's global generator (timm's init functions take no
    # generator); fork it so seeding here leaves the caller's random state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_digits_model(arch, cfg.image_size, cfg.width, cfg.depth)
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
    robust = (robust_accuracy(net, data.test_images, data.test_labels, cfg.adv_eps, norm=cfg.adv_norm)
              if cfg.robust else None)
    success = attack_success_rate(net, data, cfg.poison_target, cfg.trigger_size) if cfg.poisoned else None
    return TrainedDigitsModel(arch, _classifier(net, arch, cfg.image_size), accuracy, seconds, cached, cfg,
                              robust_accuracy=robust, attack_success=success)


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
