"""A sweep's folder on disk: settings, one PNG + JSON per class written atomically, the
manifest, and each model's contact sheet. Layout and resuming rules: :mod:`piikit.interfaces.runner`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from piikit.engine.config import InversionConfig
from piikit.engine.result import InversionResult

__all__ = [
    "SETTINGS_FILE", "MANIFEST_FILE", "SHEET_FILE", "slug", "class_stem", "write_atomic", "append_line", "settings_of",
    "recorded_settings", "differences", "check_settings", "is_finished", "one_target", "commit", "contact_sheet",
    "complete_manifest",
]

SETTINGS_FILE = "settings.json"
MANIFEST_FILE = "manifest.jsonl"
SHEET_FILE = "contact_sheet.png"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def class_stem(target: int, class_names: Sequence[str]) -> str:
    return f"{target:04d}_{slug(class_names[target].split(',')[0])}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path``, then rename: readers see all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def append_line(path: Path, record: dict[str, Any]) -> None:
    # One write() on an O_APPEND descriptor: ranks appending at once never interleave lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def settings_of(config: InversionConfig, seed: int, batch: int) -> dict[str, Any]:
    """What decides the images: the config (micro_batch only changes rounding), seed, batch."""
    config_dict = {k: v for k, v in config.to_dict().items() if k != "micro_batch"}
    return json.loads(json.dumps({"config": config_dict, "seed": seed, "batch": batch}))


def recorded_settings(meta: dict[str, Any]) -> dict[str, Any]:
    config_dict = {k: v for k, v in meta.get("config", {}).items() if k != "micro_batch"}
    return {"config": config_dict, "seed": meta.get("seed"), "batch": meta.get("sweep", {}).get("batch")}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    flat_old = {**old.get("config", {}), "seed": old.get("seed"), "batch": old.get("batch")}
    flat_new = {**new["config"], "seed": new["seed"], "batch": new["batch"]}
    return [f"{k} {flat_old.get(k)!r} -> {flat_new.get(k)!r}" for k in flat_new if flat_old.get(k) != flat_new.get(k)]


def check_settings(out: Path, settings: dict[str, Any], force: bool, write: bool) -> None:
    """Refuse other settings than ``out``'s (unless ``force``); record them where ``write`` (rank 0)."""
    path = out / SETTINGS_FILE
    if path.is_file():
        changed = differences(json.loads(path.read_text()).get("settings", {}), settings)
        if changed and not force:
            raise ValueError(
                f"{out} was made with other settings ({'; '.join(changed)}); use another --out, "
                "the same settings, or --force to redo its classes with the new ones"
            )
        if not changed:
            return
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"settings": settings}, indent=2).encode())


def is_finished(folder: Path, stem: str, settings: dict[str, Any]) -> bool:
    meta_path = folder / f"{stem}.result.json"
    if not meta_path.is_file() or not (folder / f"{stem}.png").is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    return not meta.get("interrupted") and not differences(recorded_settings(meta), settings)


def one_target(result: InversionResult, k: int, extra: dict[str, Any]) -> InversionResult:
    """Target ``k`` of a batched result as a result of its own (batch-wide history kept)."""
    history = dict(result.history)
    if "prob" in history:
        history["prob"] = history["prob"][:, k : k + 1]
    return dataclasses.replace(
        result, images=result.images[k : k + 1], targets=[result.targets[k]], history=history,
        snapshots=[s[k : k + 1] for s in result.snapshots],
        final_probs=None if result.final_probs is None else result.final_probs[k : k + 1],
        extra={**result.extra, **extra},
    )


def commit(result: InversionResult, folder: Path, tmp: Path, batch: int, rank: int, out: Path) -> None:
    """Save each target of ``result`` as NNNN_name.png + .result.json, then log it."""
    for k, target in enumerate(result.targets):
        stem = class_stem(target, result.class_names)
        one = one_target(result, k, {"sweep": {"batch": batch, "batch_targets": list(result.targets), "rank": rank}})
        shutil.rmtree(tmp, ignore_errors=True)
        (png,) = one.save(tmp)
        meta = json.loads((tmp / "result.json").read_text())
        meta["files"] = [f"{stem}.png"]
        os.replace(png, folder / f"{stem}.png")
        # The JSON goes last: its presence is what marks the class finished.
        write_atomic(folder / f"{stem}.result.json", json.dumps(meta, indent=2).encode())
        prob = None if one.final_probs is None else round(float(one.final_probs[0]), 6)
        append_line(out / MANIFEST_FILE, {
            "model": folder.name, "class": target, "label": one.labels[0], "png": f"{folder.name}/{stem}.png",
            "json": f"{folder.name}/{stem}.result.json", "final_prob": prob, "rank": rank,
            "seconds": round(result.elapsed_s / len(result.targets), 3),
        })


def contact_sheet(folder: str | Path, size: int = 112) -> Path | None:
    """Draw every finished class in a sweep's model folder into ``contact_sheet.png``,
    titled "idx: name" and the model's target probability; None if there is none."""
    from piikit.images import figure_png, read_png
    from piikit.interfaces.viz import image_grid

    folder = Path(folder)
    metas = sorted(folder.glob("*.result.json"))
    if not metas:
        return None
    images, titles = [], []
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        image = read_png(folder / meta["files"][0])
        if image.shape[-1] > size:  # a thousand full-size images would not fit in one figure
            image = torch.nn.functional.interpolate(image[None], size=(size, size), mode="area")[0]
        images.append(image)
        prob = (meta.get("final_probs") or [None])[0]
        titles.append(meta["targets"][0]["label"] + ("" if prob is None else f"\np={prob:.2f}"))
    fig = image_grid(images, titles, ncols=max(min(len(images), 6), math.ceil(math.sqrt(len(images)))), size=1.8)
    path = folder / SHEET_FILE
    write_atomic(path, figure_png(fig, dpi=80))
    return path


def complete_manifest(out: Path, folders: Sequence[str]) -> None:
    """Log classes whose files were committed by a process killed before it could log them."""
    path = out / MANIFEST_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    logged = set()
    for line in lines:
        try:
            logged.add(json.loads(line)["json"])
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by a kill
    for name in folders:
        for meta_path in sorted((out / name).glob("*.result.json")):
            key = f"{name}/{meta_path.name}"
            if key not in logged:
                meta = json.loads(meta_path.read_text())
                append_line(path, {"model": name, "class": meta["targets"][0]["index"],
                                    "label": meta["targets"][0]["label"], "png": f"{name}/{meta['files'][0]}",
                                    "json": key, "recovered": True})
