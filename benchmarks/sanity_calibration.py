"""Calibrate the sanity checks' thresholds (:class:`piikit.SanityThresholds`).

Three sets, each measured the way :func:`piikit.sanity` measures an inversion:

* **photos**: scikit-image's bundled photos (colour and grey), each labelled with Lite0's own
  top-1 class: naturalness under Lite1 (the default naturalness network for Lite0), transfer
  (Lite1/Lite2 rank of that class), and the feature cosine and SSIM between *different* photos
  (what "unrelated natural images" score).
* **lite0**: ``--classes`` of ``benchmarks/quality.py``'s 48 (a seeded random subset when fewer;
  batches of 8 as there), Lite0 inverted with ``--preset`` (``quick``), then every check:
  ``--seeds`` seeds, randomization of all layers and the ``--cascade`` levels (top layer, top half).
* **random**: the same classes on a Lite0 whose weights are all re-initialised
  (:func:`piikit.analysis.sanity.randomized_copy`, seed 123): what the checks see when the
  model has learned nothing (one seed, randomization of all layers and the ``--cascade`` levels).

Rows are appended to ``OUT.jsonl`` as each batch finishes (a rerun skips what is there);
``--summarize`` prints each measurement's range per set and how many images each check flags
under the current thresholds, and writes ``OUT.json``.

    nice -n 10 python benchmarks/sanity_calibration.py --classes 16          # about 1-2 h on 2 quiet cores
    nice -n 10 python benchmarks/sanity_calibration.py --classes 16 --seeds 1 --cascade '' --batch 4  # the core checks
    python benchmarks/sanity_calibration.py --summarize
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import piikit  # noqa: E402
from piikit.analysis.sanity import (  # noqa: E402
    CHECKS, SanityRow, SanityThresholds, feature_similarity, judge_row, naturalness, randomized_copy, ssim,
)
from piikit.analysis.evaluate import as_evaluator, score  # noqa: E402
from piikit.images import load_photo  # noqa: E402
from piikit.labels import imagenet_classes  # noqa: E402
from quality import BATCH, CLASSES  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "motorcycle", "camera", "clock", "coins", "moon", "brick", "grass", "gravel"]
OUT = Path(__file__).resolve().parent / "results" / "sanity_calibration"
# The classes that get every check (seeds and cascade, --full of them): a seeded random order of
# the 32 of the 48 that the first calibration (a seeded random 16) left out, so that no class is
# inverted twice.
FIRST_16 = sorted(random.Random(0).sample(CLASSES, 16))
FULL_SUBSET = random.Random(1).sample([c for c in CLASSES if c not in FIRST_16], 32)
MEASURES = ("randomized", "randomized_ssim", "top 1", "top 50%", "seed_similarity", "seed_ssim", "transfer_prob",
            "transfer_rank", "naturalness")


def photo(name: str) -> torch.Tensor:
    if name == "motorcycle":  # stereo_motorcycle() is (left, right, disparity)
        from skimage import data

        return load_photo(data.stereo_motorcycle()[0], 224)
    return load_photo(name, 224)


@torch.no_grad()
def photo_rows(lite0: piikit.Classifier, judges: list[piikit.Classifier]) -> list[dict[str, Any]]:
    images = torch.cat([photo(n) for n in PHOTOS])
    classes = lite0(images).argmax(-1).tolist()
    natural = naturalness(judges[0], images).tolist()
    scored = score(judges, images, classes, device="cpu")
    rows = []
    for k, name in enumerate(PHOTOS):
        mine = [r for r in scored if r["image"] == k]
        others = torch.cat([images[:k], images[k + 1 :]])
        rows.append({"set": "photos", "name": name, "target": classes[k], "label": mine[0]["label"],
                     "naturalness": natural[k], "transfer_prob": statistics.fmean(r["prob"] for r in mine),
                     "transfer_rank": min(r["rank"] for r in mine),
                     "unrelated_cos": feature_similarity(judges, images[k : k + 1].expand_as(others), others).tolist(),
                     "unrelated_ssim": ssim(images[k : k + 1].expand_as(others), others).tolist()})
    return rows


STAGES = ("base", "randomize", "full")


def saved_result(args: argparse.Namespace, kind: str, targets: list[int],
                 model_name: str = "efficientnet_lite0") -> piikit.InversionResult | None:
    """The ``base`` stage's images of ``targets`` (one seed) as a result to check again."""
    found: dict[int, tuple[int, torch.Tensor]] = {}
    for path in Path(args.images).glob(f"{Path(args.out).name}_{kind}_*.pt"):
        saved = torch.load(path)
        seed = int(path.stem.split("_")[-2])
        found.update({t: (seed, im) for t, im in zip(saved["targets"], saved["images"])})
    if not all(t in found for t in targets) or len({found[t][0] for t in targets}) != 1:
        return None
    return piikit.InversionResult(images=torch.stack([found[t][1] for t in targets]).float() / 255, targets=targets,
                                  class_names=imagenet_classes(), config=piikit.make_config(args.preset),
                                  seed=found[targets[0]][0], model_name=model_name, history={}, snapshots=[])


def inversion_rows(kind: str, model: piikit.Classifier, targets: list[int], args: argparse.Namespace,
                   seed: int, stage: str) -> list[dict[str, Any]]:
    """piikit.sanity on one invert() call's images, in stages so the central numbers come first:
    ``base`` inverts and measures transfer and naturalness (and, for the random model, the
    all-layer randomization too); ``randomize`` adds Lite0's all-layer randomization to the
    saved images; ``full`` adds ``--seeds`` seeds and the ``--cascade`` levels."""
    start = time.perf_counter()
    if stage == "base":
        result = piikit.invert(model, targets, args.preset, seed=seed, device="cpu", progress=False)
        # The images, so the later stages (and the atlas) need not invert them again.
        images = Path(args.images)
        images.mkdir(parents=True, exist_ok=True)
        torch.save({"targets": targets, "images": (result.images * 255).round().to(torch.uint8)},
                   images / f"{Path(args.out).name}_{kind}_{seed}_{targets[0]}.pt")
    else:
        result = saved_result(args, kind, targets, model.name)
        assert result is not None, f"no saved base images of {targets}"
    report = piikit.sanity(model, result, seeds=args.seeds if stage == "full" else 1,
                           randomize=stage != "base" or kind == "random",
                           cascade=args.cascade if stage == "full" else (), device="cpu")
    seconds = time.perf_counter() - start
    return [{"set": kind, "seed": result.seed, "stage": stage, "seconds_per_class": seconds / len(targets),
             **{k: v for k, v in vars(row).items() if k != "flags"}} for row in report.rows]


def merged(rows: list[dict[str, Any]]) -> dict[tuple[str, Any], dict[str, Any]]:
    """One row per (set, class): the stages' measurements together (a later stage adds what
    an earlier one left None; the seconds add up)."""
    out: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in rows:
        key = (r["set"], r.get("name") or r.get("target"))
        if key not in out:
            out[key] = dict(r)
            continue
        row = out[key]
        for k, v in r.items():
            if k == "cascade":
                row["cascade"] = {**row.get("cascade", {}), **v}
            elif k == "seconds_per_class":
                row[k] = row.get(k, 0) + v
            elif v is not None and row.get(k) is None:
                row[k] = v
    return out


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    jsonl = Path(f"{args.out}.jsonl")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.touch()

    def done(kind: str, stage: str) -> set[int]:
        field = {"base": "naturalness", "randomize": "randomized", "full": "seed_similarity"}[stage]
        rows = merged([json.loads(line) for line in jsonl.read_text().splitlines()])
        return {t for (k, t), r in rows.items() if k == kind and r.get(field) is not None}

    def append(rows: list[dict[str, Any]]) -> None:
        with jsonl.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    lite0 = piikit.load_model("efficientnet_lite0")
    if "photos" in args.sets and not done("photos", "base"):
        append(photo_rows(lite0, [as_evaluator("efficientnet_lite1"), as_evaluator("efficientnet_lite2")]))
        print("photos done", flush=True)
    kind = next((k for k in args.sets if k != "photos"), None)
    if kind is None:
        return
    model = lite0
    if kind == "random":
        model = randomized_copy(lite0, 1.0, seed=123)
        model.name = "efficientnet_lite0 (random init)"
    classes = CLASSES[: args.classes]
    full = [c for c in FULL_SUBSET if c in classes][: args.full]
    # Transfer and naturalness on every class first (one inversion each), then the all-layer
    # randomization (one more), then seeds and cascade on the subset (the full stage redoes the
    # all-layer randomization, so the randomize stage leaves the subset to it).
    plan = [("base", classes), ("randomize", [c for c in classes if c not in full]), ("full", full)]
    if kind == "random":  # the base stage randomizes too
        plan = [("base", classes), ("full", full)]
    for stage in args.stages or [s for s, _ in plan]:
        todo = [c for c in dict(plan)[stage] if c not in done(kind, stage)]
        size = args.batch if stage != "full" else max(1, args.batch // 2)
        if stage != "base":  # calls of one seed: the saved images' batches
            seeds = {c: saved_result(args, kind, [c]).seed for c in todo}
            todo.sort(key=lambda c: seeds[c])
        start = 0
        while start < len(todo):
            batch = todo[start : start + size]
            if stage != "base":
                batch = [c for c in batch if seeds[c] == seeds[batch[0]]]
            start += len(batch)
            rows = inversion_rows(kind, model, batch, args, seed=CLASSES.index(batch[0]), stage=stage)
            append(rows)
            print(f"{time.strftime('%H:%M:%S')} {kind} {stage}: {batch} done, "
                  f"{rows[0]['seconds_per_class']:.0f} s/class", flush=True)


def _range(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"n": len(values), "min": values[0], "median": statistics.median(values), "max": values[-1]}


MEASURED = {"randomization": "randomized", "cascade": "cascade", "transfer": "transfer_rank",
            "naturalness": "naturalness", "seed stability": "seed_similarity"}


def judged(row: dict[str, Any], thresholds: SanityThresholds) -> tuple[str, ...]:
    return judge_row(SanityRow(**{"image": 0, "label": "", **{k: v for k, v in row.items()
                                                             if k in SanityRow.__dataclass_fields__}}), thresholds)


def held_out(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Thresholds placed on half the classes (every other one of the 48), flags counted on the
    other half: does the current threshold hold, and where would the tuning half put it?"""
    def half(kind: str, part: int) -> list[dict[str, Any]]:
        return [r for r in rows if r["set"] == kind and CLASSES.index(r["target"]) % 2 == part]

    out: dict[str, Any] = {}
    for measure, check in (("randomized", "randomization"), ("naturalness", "naturalness")):
        tune_real = [r[measure] for r in half("lite0", 0) if r.get(measure) is not None]
        tune_random = [r[measure] for r in half("random", 0) if r.get(measure) is not None]
        if not tune_real or not tune_random:
            continue
        gap = (max(tune_real), min(tune_random))
        current = getattr(SanityThresholds(), check)
        check_real = [r[measure] for r in half("lite0", 1) if r.get(measure) is not None]
        check_random = [r[measure] for r in half("random", 1) if r.get(measure) is not None]
        op = (lambda v, t: v >= t) if check == "randomization" else (lambda v, t: v > t)
        out[check] = {"tuning half: Lite0 max, random min": gap, "midpoint": sum(gap) / 2, "current": current,
                      "current inside the gap": gap[0] < current < gap[1],
                      "check half: Lite0 flagged": f"{sum(op(v, current) for v in check_real)} of {len(check_real)}",
                      "check half: random flagged": f"{sum(op(v, current) for v in check_random)} of "
                                                     f"{len(check_random)}"}
    return out


def summarize(args: argparse.Namespace) -> dict[str, Any]:
    rows = list(merged([json.loads(line) for line in Path(f"{args.out}.jsonl").read_text().splitlines()]).values())
    thresholds = SanityThresholds()
    out: dict[str, Any] = {"thresholds": asdict(thresholds), "preset": args.preset, "sets": {}}
    for kind in ("photos", "lite0", "random"):
        mine = [r for r in rows if r["set"] == kind]
        if not mine:
            continue
        ranges = {}
        for m in MEASURES:
            values = [r[m] if m in r else r.get("cascade", {}).get(m) for r in mine]
            values = [v for v in values if v is not None]
            if values:
                ranges[m] = _range(values)
        if kind == "photos":
            ranges["unrelated_cos"] = _range([v for r in mine for v in r["unrelated_cos"]])
            ranges["unrelated_ssim"] = _range([v for r in mine for v in r["unrelated_ssim"]])
        flags = [judged(r, thresholds) for r in mine]
        measured = {c: sum(bool(r.get(f)) or r.get(f) == 0 for r in mine) for c, f in MEASURED.items()}
        counts = {c: f"{sum(c in f for f in flags)} of {measured[c]}" for c in CHECKS}
        flagged = {r.get("name") or r["label"]: list(f) for r, f in zip(mine, flags) if f}
        out["sets"][kind] = {"n": len(mine), "measured": measured, "flag_counts": counts, "ranges": ranges,
                             "flagged": flagged}
        if kind != "photos":
            out["sets"][kind]["classes"] = sorted(r["target"] for r in mine)
            out["sets"][kind]["seconds_per_class"] = statistics.fmean(r["seconds_per_class"] for r in mine)
    out["held_out"] = held_out(rows)
    Path(f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    for kind, s in out["sets"].items():
        print(f"== {kind} ({s['n']} images); flags: {s['flag_counts']}")
        for m, r in s["ranges"].items():
            print(f"   {m:<16} n {r['n']:3d}  min {r['min']:8.3f}  median {r['median']:8.3f}  max {r['max']:8.3f}")
    print(json.dumps(out["held_out"], indent=1))
    return out


def to_sweep_folder(args: argparse.Namespace, folder: Path) -> None:
    """The calibration's inversions as a sweep folder (one PNG + result.json per class, the
    sanity rows inside), to browse with ``piikit atlas FOLDER``."""
    from piikit.images import image_png
    from piikit.engine.result_files import class_stem

    rows = merged([json.loads(line) for line in Path(f"{args.out}.jsonl").read_text().splitlines()])
    names = {"lite0": "efficientnet_lite0", "random": "efficientnet_lite0 (random init)"}
    thresholds = SanityThresholds()
    for kind, model in names.items():
        for path in sorted(Path(args.images).glob(f"{Path(args.out).name}_{kind}_*.pt")):
            saved = torch.load(path)
            seed = int(path.stem.split("_")[-2])
            out = folder / ("efficientnet_lite0" if kind == "lite0" else "random_lite0")
            out.mkdir(parents=True, exist_ok=True)
            for target, image in zip(saved["targets"], saved["images"]):
                row = rows[(kind, target)]
                seeds = [seed + i for i in range(args.seeds if row.get("seed_similarity") is not None else 1)]
                stem = class_stem(target, imagenet_classes())
                (out / f"{stem}.png").write_bytes(image_png(image.float() / 255))
                meta = {"model": model, "targets": [{"index": target, "label": row["label"]}], "seed": seed,
                        "config": {"preset": args.preset}, "files": [f"{stem}.png"],
                        "elapsed_s": row["seconds_per_class"],
                        "sanity": {"rows": [{**row, "flags": list(judged(row, thresholds))}], "seeds": seeds,
                                   "thresholds": asdict(thresholds)}}
                (out / f"{stem}.result.json").write_text(json.dumps(meta, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=48, help="the first N of the 48 classes")
    parser.add_argument("--full", type=int, default=8, help="how many classes get every check (FULL_SUBSET)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=3, help="for the seed-stability check of Lite0's images")
    parser.add_argument("--cascade", type=lambda t: tuple(float(v) for v in t.split(",") if v.strip()),
                        default=(0.0, 0.5), help="cascading randomization levels, e.g. '0,0.5' ('' for none)")
    parser.add_argument("--batch", type=int, default=BATCH, help="classes per invert() call (quality.py: 8)")
    parser.add_argument("--out", default=str(OUT), help="path stem of the .jsonl rows and the .json summary")
    parser.add_argument("--sets", type=lambda t: t.split(","), default=["photos", "lite0"],
                        help="photos (if not there yet), then ONE of lite0 / random: run one process per set")
    parser.add_argument("--stages", type=lambda t: t.split(","), help=f"which of {STAGES} to run, in order "
                        "(default: all; random: base, full)")
    parser.add_argument("--images", default=str(OUT.parent.parent.parent / "out" / "sanity_calibration"),
                        help="where each call's images are saved (uint8 .pt), for --atlas")
    parser.add_argument("--summarize", action="store_true")
    parser.add_argument("--atlas", type=Path, metavar="FOLDER", help="write the inversions as a sweep folder and "
                        "build its atlas")
    args = parser.parse_args()
    if args.atlas:
        to_sweep_folder(args, args.atlas)
        print(piikit.atlas(args.atlas))
    else:
        summarize(args) if args.summarize else run(args)


if __name__ == "__main__":
    main()
