"""The atlas: a sweep folder as a static, offline HTML site to browse every class.

    piikit atlas runs/                         # -> runs/atlas/index.html (open it from the file system)
    piikit atlas runs/ --model efficientnet_lite0 --classes 0-999 --preset preview   # sweep first

Every class is a thumbnail (loaded lazily, so a thousand classes open at once); the search
box takes a name or an index; the grid sorts and filters by any score or sanity flag; a
click opens the class's page: the image at full size, its seed, each evaluator's
probability and rank, the inverted model's own top-5 on the image, the sanity checks where
:func:`piikit.sanity` was computed (they live in the class's ``result.json``) and a Grad-CAM
overlay of the target class.

The site is ``index.html``, ``atlas.js`` and ``atlas.css`` (package data, no CDN) plus
``data.js``, which holds every class's record as a script (browsers refuse ``fetch()``
from ``file://``), and folders of thumbnails and overlays. Full-size images are the sweep's
own PNGs, linked relatively. What needs the model (top-5, Grad-CAM, evaluator scores a
sweep did not compute) is kept in ``analysis.json`` beside the site, keyed by each PNG's
size and time, so a rebuild after a sweep grew computes only the new classes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from piikit.images import image_png, read_png
from piikit.interfaces.sweep_store import write_atomic
from piikit.models import OFFLINE_MODELS, Classifier, load_model

__all__ = ["atlas", "SITE_FILES"]

SITE_FILES = ("index.html", "atlas.js", "atlas.css")
ANALYSIS_FILE = "analysis.json"


def _model_folders(runs: Path) -> list[Path]:
    """``runs`` itself if it holds class results, else its subfolders that do."""
    if any(runs.glob("*.result.json")):
        return [runs]
    return sorted(p for p in runs.iterdir() if p.is_dir() and any(p.glob("*.result.json")))


def _records(folder: Path) -> list[tuple[Path, dict[str, Any], Path]]:
    """(PNG, its result's JSON, the JSON's path) per class of a model's folder."""
    out = []
    for meta_path in sorted(folder.glob("*.result.json")):
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a torn or foreign file: the sweep redoes it
        if meta.get("targets") and meta.get("files") and (folder / meta["files"][0]).is_file():
            out.append((folder / meta["files"][0], meta, meta_path))
    return out


def _thumbnail(image: torch.Tensor, size: int) -> torch.Tensor:
    if max(image.shape[-2:]) <= size:
        return image
    return F.interpolate(image[None].float(), size=(size, size), mode="area")[0]


def _overlay(image: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """The image in grey under Grad-CAM's map in a warm colour ramp (3×H×W)."""
    from matplotlib import colormaps

    grey = image.float().mean(0, keepdim=True).expand(3, -1, -1)
    heat = cam.float()
    heat = heat / heat.max().clamp_min(1e-12)
    coloured = torch.from_numpy(colormaps["inferno"](heat.numpy())[..., :3]).permute(2, 0, 1).float()
    weight = 0.25 + 0.6 * heat[None]
    return (1 - weight) * grey * 0.9 + weight * coloured


def _analysis_model(name: str, given: Classifier | nn.Module | None) -> Classifier | None:
    if given is not None:
        return given if isinstance(given, Classifier) else load_model(given)
    if name in OFFLINE_MODELS:
        return load_model(name)
    return None  # a hub model's weights may not be here; a random-init sweep cannot be rebuilt


def _analyze(model: Classifier, evaluators: Sequence[Classifier], items: list[dict[str, Any]],
             images: list[torch.Tensor], gradcam: bool, device: torch.device, batch: int = 16) -> list[dict[str, Any]]:
    """Per image: the model's top-5, evaluator scores (where the sweep has none) and the
    Grad-CAM map of the target (H×W in [0, 1], as a tensor under ``"cam"``)."""
    from piikit.analysis.attribution import attribute
    from piikit.analysis.evaluate import score
    from piikit.labels import label

    model = model.to(device).eval()
    out: list[dict[str, Any]] = []
    for start in range(0, len(items), batch):
        chunk = torch.stack(images[start : start + batch]).float()
        targets = [it["index"] for it in items[start : start + batch]]
        x = chunk.to(device)
        if tuple(x.shape[-2:]) != model.input_size and model.fixed_input_size:
            x = F.interpolate(x, size=model.input_size, mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            probs = model(x).float().softmax(-1).cpu()
        best = probs.topk(min(5, probs.shape[-1]), dim=-1)
        rows = score(list(evaluators), chunk, targets, device=device) if evaluators else []
        cams = attribute(model, x, target=targets, method="gradcam").detach().cpu() if gradcam else None
        for k, t in enumerate(targets):
            rec: dict[str, Any] = {
                "top5": [[label(int(c), model.class_names), round(float(p), 4)]
                         for p, c in zip(best.values[k], best.indices[k])],
                "scores": {r["evaluator"]: {"prob": round(r["prob"], 4), "rank": r["rank"]}
                           for r in rows if r["image"] == k},
            }
            if cams is not None:
                rec["cam"] = F.interpolate(cams[k : k + 1, :1], size=chunk.shape[-2:], mode="bilinear")[0, 0]
            out.append(rec)
    return out


def _sanity_of(report: dict[str, Any] | None, target: int) -> dict[str, Any] | None:
    """A class's row of a saved :class:`~piikit.SanityReport` (``to_dict()``), for the page."""
    if not report:
        return None
    for row in report.get("rows", []):
        if row.get("target") == target:
            keep = ("randomized", "randomized_ssim", "seed_similarity", "seed_ssim", "transfer_prob", "transfer_rank",
                    "naturalness")
            return {**{k: row.get(k) for k in keep}, "cascade": row.get("cascade", {}), "flags": row.get("flags", []),
                    "seeds": report.get("seeds"), "thresholds": report.get("thresholds")}
    return None


def _check(model: Classifier, evaluators: Sequence[Classifier], meta_paths: list[Path],
           options: Mapping[str, Any], device: torch.device, batch: int = 8) -> list[dict[str, Any]]:
    """:func:`piikit.sanity` on saved class results, ``batch`` classes of one setting and seed
    per call; per result, its report (``to_dict()``, the one row)."""
    from piikit.analysis.sanity import sanity
    from piikit.engine.result import InversionResult

    results = [InversionResult.load(p) for p in meta_paths]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault(json.dumps([r.config.to_dict(), r.seed], sort_keys=True, default=str), []).append(i)
    out: list[dict[str, Any]] = [{} for _ in results]
    for members in groups.values():
        for start in range(0, len(members), batch):
            chunk = members[start : start + batch]
            first = results[chunk[0]]
            joined = dataclasses.replace(first, images=torch.cat([results[i].images for i in chunk]),
                                         targets=[t for i in chunk for t in results[i].targets], final_probs=None,
                                         scores=None, extra={})
            report = sanity(model, joined, list(evaluators), device=device, **options).to_dict()
            for i in chunk:
                rows = [row for row in report["rows"] if row["target"] in results[i].targets]
                out[i] = {**report, "rows": rows}
    return out


def atlas(
    runs: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    model: Classifier | nn.Module | str | None = None,
    evaluators: Sequence[str | Classifier | nn.Module] | None = None,
    analyze: bool = True,
    gradcam: bool = True,
    sanity: bool | Mapping[str, Any] = False,
    classes: int | str | Sequence[int | str] | None = None,
    preset: str = "preview",
    thumb_size: int = 112,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """Build the atlas of a sweep folder and return the path of its ``index.html``.

    Args:
        runs: a sweep's ``--out`` folder (one subfolder per model) or one model's folder.
        out: where the site goes (default ``runs/atlas``).
        model: the model the sweep inverted, for the top-5 and Grad-CAM (needed for your own
            models; the offline Lite models load by name from the results). In a sweep of
            several models it serves the folder whose results carry its name.
        evaluators: models that score the images where the sweep did not (default: the
            offline models other than the inverted one, for an offline model; else none).
        analyze: compute the top-5, scores and Grad-CAM (False: images and recorded
            numbers only, in seconds for a thousand classes).
        gradcam: include the Grad-CAM overlay.
        sanity: run :func:`piikit.sanity` on the classes whose results carry none. True:
            the core checks (one seed, all-layer randomization, transfer, naturalness),
            which cost one more inversion per class at the sweep's setting and seed (plus
            the evaluators' forward passes); a dict: :func:`piikit.sanity`'s keyword
            arguments, e.g. ``{"seeds": 3, "cascade": (0, 0.5)}`` (``seeds - 1`` + 1 +
            ``len(cascade)`` inversions per class). Kept in ``analysis.json`` like the
            rest of the analysis: a rebuild reuses it, a redone image forgets it.
        classes: run :func:`piikit.sweep` first for these classes of ``model`` (a name or
            a loaded model), at ``preset``, into ``runs`` (it resumes as a sweep does).
        preset: the sweep's preset when ``classes`` is given (``overrides`` change its fields).
        thumb_size: the thumbnails' side in pixels.
        device: where the model runs.
        progress: print a line per model analysed.

    >>> piikit.atlas("runs/")  # doctest: +SKIP
    PosixPath('runs/atlas/index.html')
    """
    from piikit.analysis.evaluate import as_evaluator, default_evaluators, tv_per_pixel
    from piikit.device import resolve_device

    runs = Path(runs)
    if classes is not None:
        if model is None:
            raise ValueError("atlas(classes=...) runs a sweep first: give the model too (model='efficientnet_lite0')")
        from piikit.interfaces.runner import sweep

        sweep(model, classes, preset, runs, progress=progress, **overrides)
    if not runs.is_dir():
        raise FileNotFoundError(f"no sweep folder {str(runs)!r}; make one with `piikit sweep --out {runs}` "
                                "or pass classes=... to run it")
    folders = _model_folders(runs)
    if not folders:
        raise ValueError(f"{str(runs)!r} holds no class results (NNNN_name.result.json); is it a sweep's --out?")
    site = Path(out) if out is not None else runs / "atlas"
    site.mkdir(parents=True, exist_ok=True)
    cache_path = site / ANALYSIS_FILE
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    dev = resolve_device(device)
    loaded = model if isinstance(model, (Classifier, nn.Module)) else None
    entries: list[dict[str, Any]] = []
    evaluator_names: list[str] = []
    start = time.perf_counter()
    for folder in folders:
        records = _records(folder)
        if not records:
            continue
        name = records[0][1].get("model", folder.name)
        keys = [f"{folder.name}/{png.name}" for png, _, _ in records]
        stamps = [f"{png.stat().st_size}:{png.stat().st_mtime_ns}" for png, _, _ in records]
        for key, stamp in zip(keys, stamps):
            if cache.get(key, {}).get("stamp") != stamp:
                cache[key] = {"stamp": stamp}  # a new or redone image: forget what was computed
        todo = [i for i, key in enumerate(keys) if "top5" not in cache[key]] if analyze else []
        unchecked = [i for i, key in enumerate(keys) if not records[i][1].get("sanity")
                     and "sanity" not in cache[key]] if sanity else []
        clf = None
        if todo or unchecked:
            given = loaded if loaded is not None else model if isinstance(model, str) else None
            mine = len(folders) == 1 or getattr(given, "name", given) == name  # a multi-model sweep: by name
            clf = _analysis_model(name, given if mine else None)
            if clf is None and progress:
                print(f"piikit atlas: {name}: no top-5, Grad-CAM or sanity checks (pass model=... to load it)",
                      file=sys.stderr)
        if clf is not None:
            specs = evaluators if evaluators is not None else (default_evaluators(name) if name in OFFLINE_MODELS
                                                               else [])
            judges = [as_evaluator(e) for e in specs]
        if clf is not None and todo:
            items = [records[i][1]["targets"][0] for i in todo]
            # read_png gives RGB; a grey PNG has three equal channels, so one of them is the image.
            images = [read_png(records[i][0])[: clf.in_chans] for i in todo]
            for i, image, rec in zip(todo, images, _analyze(clf, judges, items, images, gradcam, dev)):
                cam = rec.pop("cam", None)
                if cam is not None:
                    cam_path = site / "cam" / keys[i]
                    cam_path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(cam_path, image_png(_overlay(image, cam)))
                    rec["cam"] = f"cam/{keys[i]}"
                cache[keys[i]].update(rec)
            if progress:
                print(f"piikit atlas: {name}: analysed {len(todo)} class(es)", file=sys.stderr)
        if clf is not None and unchecked:
            options = sanity if isinstance(sanity, Mapping) else {"seeds": 1, "cascade": ()}
            reports = _check(clf, judges, [records[i][2] for i in unchecked], options, dev)
            for i, report in zip(unchecked, reports):
                cache[keys[i]]["sanity"] = report
            write_atomic(cache_path, json.dumps(cache).encode())  # the costliest part: keep it at once
            if progress:
                print(f"piikit atlas: {name}: sanity checks on {len(unchecked)} class(es)", file=sys.stderr)
        thumbs = site / "thumbs" / folder.name
        thumbs.mkdir(parents=True, exist_ok=True)
        for (png, meta, _), key in zip(records, keys):
            target = meta["targets"][0]
            extra = cache[key]
            thumb = thumbs / png.name
            if "tv" not in extra or not thumb.is_file():
                image = read_png(png)
                extra["tv"] = round(float(tv_per_pixel(image[None])[0]), 4)
                write_atomic(thumb, image_png(_thumbnail(image, thumb_size)))
            scores = {r["evaluator"]: {"prob": round(r["prob"], 4), "rank": r["rank"]}
                      for r in meta.get("scores") or [] if r.get("target") == target["index"]}
            scores = scores or extra.get("scores", {})
            evaluator_names += [e for e in scores if e not in evaluator_names]
            label = target["label"]
            entries.append({
                "model": name, "folder": folder.name, "index": target["index"], "label": label,
                "name": label.split(": ", 1)[-1], "image": os.path.relpath(png, site).replace(os.sep, "/"),
                "thumb": f"thumbs/{key}", "cam": extra.get("cam"), "seed": meta.get("seed"),
                "preset": (meta.get("config") or {}).get("preset"),
                "prob": (meta.get("final_probs") or [None])[0], "tv": extra["tv"],
                "seconds": meta.get("elapsed_s"), "scores": scores, "top5": extra.get("top5", []),
                "sanity": _sanity_of(meta.get("sanity") or extra.get("sanity"), target["index"]),
            })
    write_atomic(cache_path, json.dumps(cache).encode())
    data = {"entries": entries, "evaluators": evaluator_names, "models": list(dict.fromkeys(e["model"] for e in entries)),
            "source": str(runs), "built_s": round(time.perf_counter() - start, 2)}
    # A script, not JSON: file:// pages may not fetch() their neighbours. "</" is escaped so
    # no label can close the script element.
    write_atomic(site / "data.js", ("window.ATLAS = " + json.dumps(data).replace("</", "<\\/") + ";\n").encode())
    source = resources.files("piikit.interfaces") / "atlas_site"
    for name in SITE_FILES:
        with resources.as_file(source / name) as path:
            shutil.copyfile(path, site / name)
    return site / "index.html"

