"""Image conversion, in one place: tensors in [0, 1] ↔ numpy arrays ↔ PNG files and bytes,
photos as model inputs, matplotlib figures → PNG bytes, and what a run may start from (init
images: tensors, arrays, PNG paths) checked into a batch.

Tensors are C×H×W floats in [0, 1] (RGB, grayscale, or any channel count a model takes).
PNGs are written as :meth:`~piikit.InversionResult.save` writes them: RGB for 3 channels,
grayscale for 1, and any other channel count as its channels side by side in grey.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from piikit.errors import InvalidValueError, first_line

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["to_uint8", "to_numpy_image", "image_png", "save_png", "read_png", "load_photo", "figure_png", "as_batch",
           "as_init_images", "checked_init"]


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


def read_png(path: str | os.PathLike, keep_gray: bool = False) -> torch.Tensor:
    """A PNG (or any image PIL reads) as a 3×H×W RGB tensor in [0, 1]; with ``keep_gray`` a
    grayscale file as 1×H×W (as a 1-channel image was saved)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            gray = keep_gray and im.mode in ("L", "I;16", "I")
            array = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float32) / 255.0
            if gray:
                array = array[..., None]
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


def as_batch(images: torch.Tensor, what: str = "images", channels: int | None = None, count: str = "N") -> torch.Tensor:
    """``images`` as N×C×H×W: one C×H×W image becomes a batch of one; anything else that is
    not 4-d (or, given ``channels``, has another channel count) is refused in one line that
    names ``what`` and the shape expected (``count``: the letter for the batch size)."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or (channels is not None and images.shape[1] != channels):
        shape = f"{count}×{channels if channels is not None else 'C'}×H×W"
        raise ValueError(f"{what} must be {shape} images (or one C×H×W image), got shape {tuple(images.shape)}")
    return images


def as_init_images(init: Any) -> torch.Tensor:
    """``init`` as a float tensor: a tensor, a numpy array or nested list, a PNG path (or a
    list of paths); uint8 pixels (0..255) are divided by 255. Anything else is refused in one line."""
    if isinstance(init, (str, os.PathLike)) or (
        isinstance(init, (list, tuple)) and init and all(isinstance(x, (str, os.PathLike)) for x in init)
    ):
        paths = [init] if isinstance(init, (str, os.PathLike)) else list(init)
        images = []
        for path in paths:
            try:
                images.append(read_png(path))
            except (OSError, ValueError) as error:
                raise InvalidValueError(f"init {str(path)!r} cannot be read as an image ({first_line(error)})") from error
        return torch.stack(images) if len(images) > 1 else images[0]
    if isinstance(init, (np.ndarray, list, tuple)):
        try:
            init = torch.as_tensor(np.asarray(init))
        except (TypeError, ValueError, RuntimeError) as error:
            raise InvalidValueError(f"init must be K×C×H×W images in [0, 1] (a tensor, an array or a PNG path), "
                                    f"got a {type(init).__name__} that is not a numeric array ({first_line(error)})") from error
    if not isinstance(init, torch.Tensor):
        raise InvalidValueError(f"init must be K×C×H×W images in [0, 1] (a tensor, an array or a PNG path), "
                                f"got {type(init).__name__}")
    if init.dtype == torch.uint8:
        return init.float() / 255.0  # 0..255 pixels
    if init.is_complex() or init.dtype == torch.bool:
        raise InvalidValueError(f"init must be real-valued images in [0, 1], got dtype {init.dtype}")
    return init


def checked_init(init: Any, k: int, channels: int) -> torch.Tensor:
    """``init`` (anything :func:`as_init_images` takes) as K×C×H×W images in [0, 1], checked
    before any step runs: values outside [0, 1] are clamped with a warning saying what they
    look like, NaN/inf refused."""
    init = as_batch(as_init_images(init), "init", channels, count=str(k))
    if init.shape[0] != k:
        raise ValueError(f"init must be {k}×{channels}×H×W images (one per target, the model's channels), "
                         f"got shape {tuple(init.shape)}")
    init = init.detach().float()
    bad = int((~torch.isfinite(init)).sum())
    if bad:
        raise ValueError(f"init holds {bad} NaN/inf value(s); pass finite images in [0, 1]")
    low, high = init.min().item(), init.max().item()
    if low < 0 or high > 1:
        hint = ("0..255 pixel values? divide by 255" if high > 1.5 and low >= 0
                else "normalized images? undo the model's normalization")
        warnings.warn(f"init has values in [{low:.3g}, {high:.3g}], outside [0, 1] ({hint}); "
                      "clamped to [0, 1]", stacklevel=3)
        init = init.clamp(0, 1)
    return init
