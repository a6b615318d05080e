"""Reading checkpoint files safely: state dicts from ``torch.save`` or ``.safetensors``,
pickled whole models only when trusted, and a static look at what a pickle would import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from piikit.errors import ModelLoadError, first_line

__all__ = ["read_checkpoint", "read_state_dict", "load_into"]


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    obj = read_checkpoint(os.fspath(path), trust_pickle=False)
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    return obj


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


def read_checkpoint(path: str, trust_pickle: bool) -> Any:
    if not os.path.isfile(path):
        raise ModelLoadError(f"no checkpoint file at {path!r}")
    if os.path.getsize(path) == 0:
        raise ModelLoadError(f"{path!r} is empty, not a checkpoint")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as e:  # safetensors raises its own SafetensorError
            raise ModelLoadError(f"{path!r} is not a readable safetensors file ({first_line(e)})") from e
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
            raise ModelLoadError(f"could not unpickle {path!r}: {first_line(e)}") from e
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


def load_into(net: nn.Module, state: Mapping[str, torch.Tensor], path: Any) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{os.fspath(path)!r} does not fit this architecture: {first_line(e)} …") from e
