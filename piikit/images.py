"""Image conversion, in one place: tensors in [0, 1] ↔ numpy arrays ↔ PNG files and bytes,
photos as model inputs, and matplotlib figures → PNG bytes.

Tensors are C×H×W floats in [0, 1] (RGB, grayscale, or any channel count a model takes).
PNGs are written as :meth:`~piikit.InversionResult.save` writes them: RGB for 3 channels,
grayscale for 1, and any other channel count as its channels side by side in grey.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["to_uint8", "to_numpy_image", "image_png", "save_png", "read_png", "load_photo", "figure_png"]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A C×H×W image in [0, 1] as the uint8 array a PNG is written from: H×W×3 for RGB,
    H×W (grayscale) for one channel, and for any other C its channels side by side as
    one grayscale H×(C·W) image."""
    pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if pixels.shape[0] == 3:
        return pixels.permute(1, 2, 0).numpy()
    return torch.cat(list(pixels), dim=-1).numpy()


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """A C×H×W tensor in [0, 1] as an H×W×C float array (what matplotlib and Captum
    expect); a 1-channel image becomes H×W."""
    if image.ndim != 3:
        raise ValueError(f"expected one C×H×W image, got shape {tuple(image.shape)}")
    array = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def image_png(image: torch.Tensor) -> bytes:
    """PNG bytes of one C×H×W image in [0, 1] (or a K×C×H×W batch, laid side by side), as
    :meth:`InversionResult.save` writes it (RGB, or grayscale for one channel)."""
    if image.ndim == 4:
        image = torch.cat(list(image), dim=-1)
    buffer = io.BytesIO()
    save_png(image, buffer)
    return buffer.getvalue()


def save_png(image: torch.Tensor, path: str | os.PathLike | Any) -> None:
    """Write one C×H×W image in [0, 1] as a PNG file (or into a binary file object)."""
    from PIL import Image

    Image.fromarray(to_uint8(image)).save(path, format="png")


def read_png(path: str | os.PathLike) -> torch.Tensor:
    """A PNG (or any image PIL reads) as a 3×H×W RGB tensor in [0, 1]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as error:  # not an image, truncated, corrupt
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{os.fspath(path)} is not a readable image ({reason})") from error
    return torch.from_numpy(array).permute(2, 0, 1)


def load_photo(source: str | os.PathLike | np.ndarray, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """A photo as a 1×3×H×W batch in [0, 1], ready for a classifier: scaled (antialiased
    bilinear) until it covers ``size``, then its centre cropped to it (ImageNet evaluation's
    centre crop without its 0.875 margin); ``size=None`` keeps the full photo.

    Args:
        source: the name of a photo that scikit-image bundles (``"coffee"``, ``"chelsea"``,
            ``"astronaut"``, … from ``skimage.data``), a file path, or an H×W×3 (or H×W)
            array, uint8 in [0, 255] or float in [0, 1].
        size: the side of a square, or (H, W) such as a model's ``input_size``.

    >>> load_photo("coffee", 224).shape  # doctest: +SKIP
    torch.Size([1, 3, 224, 224])
    """
    if isinstance(source, np.ndarray):
        array = source
    elif os.path.exists(source):
        return _fit(read_png(source)[None], size)
    else:
        from skimage import data

        array = getattr(data, str(source), None)
        if not callable(array) or str(source).startswith("_"):
            raise ValueError(f"{source!r} is neither an image file nor a photo in skimage.data")
        array = array()
    if array.ndim == 2:  # a grayscale photo: the same grey in every channel
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an H×W×3 photo, got shape {array.shape}")
    pixels = torch.from_numpy(np.ascontiguousarray(array[..., :3])).permute(2, 0, 1)[None]
    image = pixels.float() / 255 if array.dtype == np.uint8 else pixels.float()
    return _fit(image, size)


def _fit(image: torch.Tensor, size: int | tuple[int, int] | None) -> torch.Tensor:
    if size is None:
        return image
    out_h, out_w = (size, size) if isinstance(size, int) else size
    height, width = image.shape[-2:]
    # Scale until the photo covers the target, then crop the centre: squashing would change
    # the object's proportions.
    scale = max(out_h / height, out_w / width)
    resized = torch.nn.functional.interpolate(
        image, size=(max(out_h, round(height * scale)), max(out_w, round(width * scale))),
        mode="bilinear", antialias=True, align_corners=False)
    top, left = (resized.shape[-2] - out_h) // 2, (resized.shape[-1] - out_w) // 2
    return resized[..., top : top + out_h, left : left + out_w].clamp(0, 1)


def figure_png(figure: Figure, dpi: float | None = 80, **kwargs: Any) -> bytes:
    """PNG bytes of a matplotlib figure (works without pyplot or a display); ``dpi=None``
    uses matplotlib's default; other keywords go to ``savefig``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, **kwargs)
    return buffer.getvalue()
