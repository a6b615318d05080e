"""The result of an inversion: images plus everything needed to understand and redo it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from piikit.engine.config import InversionConfig
from piikit.errors import WriteFailed, first_line
from piikit.labels import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["InversionResult", "new_file_mode"]


def new_file_mode() -> int:
    """The mode a new file gets (0o666 less the umask); temporaries from ``mkstemp`` are
    0o600 and keep it through the rename unless given this."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@dataclass
class InversionResult:
    """What :func:`piikit.invert` returns.

    Attributes:
        images: K×C×S×S float tensor in [0, 1] on the CPU, one image per target (C = 3
            for RGB models; 1-channel results are saved as grayscale PNGs).
        targets: the K target class indices.
        class_names: the model's class names (``class_names[targets[k]]``).
        config: the full config the run used.
        seed: the seed, or None.
        model_name: the inverted model's display name.
        history: per step: ``"loss"`` (T,; the step's total loss, objective plus weighted
            terms, divided by the number of images, so runs of any batch size compare), ``"prob"`` (T×K, target probability averaged
            over the augmented copies), ``"stage"`` (T,), ``"lr"`` (T,) and one (T,) entry
            per loss term.
        snapshots: each finished stage's images (K×C×s×s), for filmstrips.
        final_probs: (K,) the model's target probability on each final, unaugmented image.
        alpha: ``param="maco"`` only (else None): K×1×S×S in [0, 1], MaCo's transparency map,
            the absolute gradient of the loss with respect to each image summed over all
            steps (grown with the image between stages), divided by its maximum: where the
            model looked. ``show(alpha=True)`` fades the rest of the image out.
        interrupted: True if the run ended early (Ctrl-C, a Stop button, a failure).
        stop_reason: why it ended early: ``"interrupted"``, ``"stopped"``, ``"nonfinite"``, ``"oom"``.
        steps_done: optimizer steps completed, of ``config.total_steps``.
        scores: evaluator scores once :meth:`score` has run (saved into the JSON).
        sanity: the :class:`~piikit.analysis.sanity.SanityReport` once :func:`piikit.sanity`
            has run (saved into the JSON; :meth:`show` marks each image's flags).
    """

    images: torch.Tensor
    targets: list[int]
    class_names: tuple[str, ...]
    config: InversionConfig
    seed: int | None
    model_name: str
    history: dict[str, torch.Tensor]
    snapshots: list[torch.Tensor]
    final_probs: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    interrupted: bool = False
    stop_reason: str | None = None
    steps_done: int = 0
    elapsed_s: float = 0.0
    device: str = "cpu"
    scores: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sanity: Any = None

    @property
    def labels(self) -> list[str]:
        """``"idx: name"`` for each target."""
        return [label(t, self.class_names) if t >= 0 else f"image {k}" for k, t in enumerate(self.targets)]

    def titles(self) -> list[str]:
        if self.final_probs is None:
            return self.labels
        return [f"{lab}\np={p:.2f}" for lab, p in zip(self.labels, self.final_probs.tolist())]

    def show(self, ncols: int | None = None, alpha: bool = False, **kwargs: Any) -> "Figure":
        """A grid of the images titled with class and final target probability; with
        ``alpha=True`` (``param="maco"`` results) each image fades to white where its
        transparency map is low (:func:`piikit.interfaces.viz.with_alpha`)."""
        from piikit.interfaces.viz import image_grid, with_alpha

        if alpha and self.alpha is None:
            raise ValueError(f"this result has no transparency map: it comes with param='maco' "
                             f"(this run used param={self.config.param!r})")
        images = with_alpha(self.images, self.alpha) if alpha else self.images
        fig = image_grid(images, self.titles(), ncols=ncols, **kwargs)
        if self.sanity is not None:
            from piikit.interfaces.sanity_view import mark_flags

            mark_flags(fig, self.sanity)
        return fig

    def followed_by(self, later: InversionResult) -> InversionResult:
        """This run and ``later`` (a run started from this one's images) as one result:
        ``later``'s images and settings, both histories end to end (stage numbers run on;
        a term only one run has reads NaN in the other's steps), both snapshots, the steps
        and seconds added up."""
        n, m = self.steps_done, later.steps_done
        history = {}
        for key in dict.fromkeys([*self.history, *later.history]):
            a, b = self.history.get(key), later.history.get(key)
            if key == "stage" and a is not None and b is not None:
                b = b + (int(a.max()) + 1 if a.numel() else 0)
            like = a if a is not None else b
            assert like is not None
            a = a if a is not None else torch.full((n, *like.shape[1:]), float("nan"))
            b = b if b is not None else torch.full((m, *like.shape[1:]), float("nan"))
            history[key] = torch.cat([a.to(torch.result_type(a, b)), b.to(torch.result_type(a, b))])
        return dataclasses.replace(
            later, history=history, snapshots=[*self.snapshots, *later.snapshots],
            steps_done=n + m, elapsed_s=self.elapsed_s + later.elapsed_s,
        )

    def filmstrip(self, index: int = 0) -> "Figure":
        """Image ``index`` at the end of each stage."""
        from piikit.interfaces.viz import filmstrip

        return filmstrip(self.snapshots, index, title=self.labels[index])

    def plot_history(self) -> "Figure":
        from piikit.interfaces.viz import plot_history

        return plot_history(self.history, self.labels)

    def score(self, evaluators: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Score the images with other models (see :func:`piikit.analysis.evaluate.score`); the rows
        are kept in ``scores`` and written by :meth:`save`."""
        from piikit.analysis.evaluate import score

        kwargs.setdefault("inverted", self.model_name)
        self.scores = score(self.images, self.targets, evaluators=evaluators, **kwargs)
        return self.scores

    def metadata(self) -> dict[str, Any]:
        """Everything :meth:`save` writes to JSON besides the images."""
        import timm

        from piikit.version import __version__

        return {
            "model": self.model_name,
            "targets": [{"index": t, "label": lab} for t, lab in zip(self.targets, self.labels)],
            "seed": self.seed,
            "config": self.config.to_dict(),
            "final_probs": None if self.final_probs is None else [round(p, 6) for p in self.final_probs.tolist()],
            "interrupted": self.interrupted,
            "stop_reason": self.stop_reason,
            "steps_done": self.steps_done,
            "total_steps": self.config.total_steps,
            "elapsed_s": round(self.elapsed_s, 3),
            "device": self.device,
            "scores": self.scores,
            "versions": {
                "piikit": __version__,
                "torch": torch.__version__,
                "timm": timm.__version__,
                "python": platform.python_version(),
            },
            **self.extra,
        }

    def save(self, directory: str | Path, snapshots: bool = False, prefix: str = "") -> list[Path]:
        """Write one PNG per target and ``result.json`` (config, seed, versions, scores), all
        or nothing: every file goes to a temporary name first and is renamed into place once
        all are written (``result.json`` last).

        On a write error (disk full, no permission) nothing half-written is left, and the
        images and metadata are kept in a tensor file (beside the output, else in the
        system's temporary folder) whose path the raised :class:`~piikit.errors.WriteFailed`
        names: ``torch.load(path)["images"]``, and ``["metadata"]`` the JSON ``result.json`` would hold.

        Args:
            directory: created if missing.
            snapshots: also write each target's stages as ``*_stages.png``.
            prefix: prepended to every file name (e.g. the model name in a sweep).

        Returns:
            The paths of the PNGs written.
        """
        from piikit.images import figure_png, image_png

        out = Path(directory)
        paths: list[Path] = []
        files: dict[Path, bytes | None] = {}  # in writing order; None: JSON, filled in below
        for k, (t, img) in enumerate(zip(self.targets, self.images)):
            if t >= 0:
                slug = re.sub(r"[^a-z0-9]+", "_", self.class_names[t].split(",")[0].lower()).strip("_")
                path = out / f"{prefix}{k:02d}_{t:04d}_{slug}.png"
            else:  # a feature objective's image has no class
                path = out / f"{prefix}{k:02d}_image.png"
            files[path] = image_png(img)
            paths.append(path)
            if snapshots and self.snapshots:
                import matplotlib.pyplot as plt

                fig = self.filmstrip(k)
                files[path.with_name(path.stem + "_stages.png")] = figure_png(fig, dpi=100)
                plt.close(fig)
        meta = self.metadata()
        meta["files"] = [p.name for p in paths]
        files[out / f"{prefix}result.json"] = json.dumps(meta, indent=2).encode()
        written: list[tuple[str, Path]] = []
        renamed: list[Path] = []
        failed_at = out
        try:
            out.mkdir(parents=True, exist_ok=True)
            for path, data in files.items():
                failed_at = path
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=out)
                written.append((tmp, path))
                os.fchmod(fd, new_file_mode())
                with os.fdopen(fd, "wb") as f:
                    f.write(data)  # type: ignore[arg-type]
                    f.flush()
                    os.fsync(f.fileno())
            for tmp, path in written:  # result.json last: its presence marks the result complete
                failed_at = path
                os.replace(tmp, path)
                renamed.append(path)
        except OSError as error:
            for tmp, _ in written:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            for path in renamed:  # all or nothing: no PNGs without their result.json
                with contextlib.suppress(OSError):
                    path.unlink()
            kept = self._keep_unsaved(out, prefix, meta)
            where = (f"the images are kept in {kept} (torch.load it: ['images'], ['metadata'] as JSON)" if kept
                     else "the images could not be kept anywhere either; the result is only in memory")
            raise WriteFailed(f"could not write {failed_at}: {error.strerror or first_line(error)}; {where}") from error
        return paths

    def _keep_unsaved(self, out: Path, prefix: str, meta: dict[str, Any]) -> Path | None:
        """The images and metadata as one tensor file, beside ``out`` or in the system's
        temporary folder (the disk of ``out`` may be the full one); None if neither works."""
        name = f"piikit-unsaved-{prefix}{os.getpid()}-{int(time.time())}.pt"
        for folder in (out, Path(tempfile.gettempdir()), Path.home()):
            path = folder / name
            try:
                # Plain types only, so torch.load(path) (weights_only) reads it: the metadata as JSON text.
                torch.save({"images": self.images, "targets": list(self.targets), "metadata": json.dumps(meta)}, path)
                return path
            except (OSError, RuntimeError):
                with contextlib.suppress(OSError):
                    path.unlink()
        return None
