"""The result of an inversion: images plus everything needed to understand and redo it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from piikit.engine.config import InversionConfig
from piikit.engine.result_files import (WriteError, image_name, read_images, read_result, result_name,
                                        write_files)
from piikit.errors import WriteFailed, first_line
from piikit.labels import label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["InversionResult"]


#: What :meth:`InversionResult.metadata` writes besides the result's ``extra`` (and ``files``).
_SAVED_FIELDS = ("model", "targets", "seed", "config", "final_probs", "interrupted", "stop_reason", "steps_done",
                 "total_steps", "elapsed_s", "device", "scores", "versions", "files")


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
        steps_done: optimizer steps completed, of ``total_steps``.
        total_steps: the steps planned over every phase of the run (a warm-up, the stages, a refine
            phase); None on construction means ``config.total_steps``.
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
    total_steps: int | None = None
    elapsed_s: float = 0.0
    device: str = "cpu"
    scores: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sanity: Any = None

    def __post_init__(self) -> None:
        if self.total_steps is None:
            self.total_steps = self.config.total_steps

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
        transparency map is low (:func:`piikit.figures.with_alpha`)."""
        from piikit.figures import image_grid, with_alpha

        if alpha and self.alpha is None:
            raise ValueError(f"this result has no transparency map: it comes with param='maco' "
                             f"(this run used param={self.config.param!r})")
        images = with_alpha(self.images, self.alpha) if alpha else self.images
        fig = image_grid(images, self.titles(), ncols=ncols, **kwargs)
        if self.sanity is not None:
            from piikit.figures import mark_flags

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
            steps_done=n + m, total_steps=(self.total_steps or 0) + (later.total_steps or 0), elapsed_s=self.elapsed_s + later.elapsed_s,
        )

    def filmstrip(self, index: int = 0) -> "Figure":
        """Image ``index`` at the end of each stage."""
        from piikit.figures import filmstrip

        return filmstrip(self.snapshots, index, title=self.labels[index])

    def plot_history(self) -> "Figure":
        from piikit.figures import plot_history

        return plot_history(self.history, self.labels)

    def score(self, evaluators: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Score the images with other models (see :func:`piikit.score`); the rows are kept
        in ``scores`` and written by :meth:`save`."""
        from piikit.models.scoring import score

        return score(evaluators, self, **kwargs)

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
            "total_steps": self.total_steps,
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
        files: dict[Path, bytes] = {}  # in writing order, result.json last
        for k, (t, img) in enumerate(zip(self.targets, self.images)):
            path = out / image_name(t, self.class_names, index=k, prefix=prefix)
            files[path] = image_png(img)
            paths.append(path)
            if snapshots and self.snapshots:
                import matplotlib.pyplot as plt

                fig = self.filmstrip(k)
                files[path.with_name(path.stem + "_stages.png")] = figure_png(fig, dpi=100)
                plt.close(fig)
        meta = self.metadata()
        meta["files"] = [p.name for p in paths]
        files[out / result_name(prefix)] = json.dumps(meta, indent=2).encode()
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_files(files)
        except OSError as error:
            failed_at = error.path if isinstance(error, WriteError) else out
            kept = self._keep_unsaved(out, prefix, meta)
            where = (f"the images are kept in {kept} (torch.load it: ['images'], ['metadata'] as JSON)" if kept
                     else "the images could not be kept anywhere either; the result is only in memory")
            raise WriteFailed(f"could not write {failed_at}: {error.strerror or first_line(error)}; {where}") from error
        return paths

    @classmethod
    def load(cls, path: str | Path) -> InversionResult:
        """A result that :meth:`save` wrote: ``path`` is its folder (``result.json`` in it) or
        its JSON file (``batch001_result.json``, a sweep's ``0980_volcano.result.json``).

        The images come back as the PNGs hold them (8 bits: within 1/510 of the saved
        values), with the config, seed, targets, final probabilities, scores and the other
        metadata; per-step history, stage snapshots and the transparency map are not saved,
        so they come back empty. Class names are ImageNet's when the saved labels are
        ImageNet's, else taken from the labels.

        >>> result = InversionResult.load("out/")  # doctest: +SKIP
        """
        from piikit.labels import imagenet_classes

        path = Path(path)
        meta_path = path / result_name() if path.is_dir() else path
        if not meta_path.is_file():
            raise FileNotFoundError(f"no result at {meta_path}: give a folder InversionResult.save (piikit invert "
                                    "--out DIR) wrote, or its *result.json file")
        meta, paths, targets = read_result(meta_path)
        labels = [t.get("label", "") for t in meta["targets"]]
        names: tuple[str, ...] = imagenet_classes()
        if any(t >= len(names) or (t >= 0 and label(t, names) != lab) for t, lab in zip(targets, labels)):
            # Not ImageNet's: the names the labels carry ("idx: name"), empty elsewhere.
            table = [""] * (max(targets) + 1)
            for t, lab in zip(targets, labels):
                if t >= 0:
                    table[t] = lab.split(": ", 1)[-1]
            names = tuple(table)
        config = InversionConfig.from_dict(meta.get("config") or {})
        probs = meta.get("final_probs")
        extra = {k: v for k, v in meta.items() if k not in _SAVED_FIELDS}
        return cls(
            images=read_images(paths), targets=targets, class_names=names, config=config, seed=meta.get("seed"),
            model_name=meta.get("model", ""), history={}, snapshots=[],
            final_probs=None if probs is None else torch.tensor(probs), interrupted=bool(meta.get("interrupted")),
            stop_reason=meta.get("stop_reason"), steps_done=int(meta.get("steps_done") or 0),
            total_steps=meta.get("total_steps"),
            elapsed_s=float(meta.get("elapsed_s") or 0.0), device=meta.get("device", "cpu"),
            scores=meta.get("scores"), extra=extra,
        )

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
