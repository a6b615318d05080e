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
from quality import BATCH, CLASSES  # noqa: E402

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "motorcycle", "camera", "clock", "coins", "moon", "brick", "grass", "gravel"]
OUT = Path(__file__).resolve().parent / "results" / "sanity_calibration"
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


def inversion_rows(kind: str, model: piikit.Classifier, targets: list[int], args: argparse.Namespace,
                   seed: int) -> list[dict[str, Any]]:
    start = time.perf_counter()
    result = piikit.invert(model, targets, args.preset, seed=seed, device="cpu", progress=False)
    report = piikit.sanity(model, result, seeds=args.seeds if kind == "lite0" else 1, cascade=args.cascade,
                           device="cpu")
    seconds = time.perf_counter() - start
    # The images too, so a measurement can be re-derived without inverting again.
    torch.save({"targets": targets, "images": (result.images * 255).round().to(torch.uint8)},
               Path(f"{args.out}_{kind}_{seed}.pt"))
    return [{"set": kind, "seed": seed, "seconds_per_class": seconds / len(targets),
             **{k: v for k, v in vars(row).items() if k != "flags"}} for row in report.rows]


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    jsonl = Path(f"{args.out}.jsonl")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.touch()
    done = {(r["set"], r.get("target")) for r in map(json.loads, jsonl.read_text().splitlines())}
    lite0 = piikit.load_model("efficientnet_lite0")
    judges = [as_evaluator("efficientnet_lite1"), as_evaluator("efficientnet_lite2")]

    def append(rows: list[dict[str, Any]]) -> None:
        with jsonl.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    if not any(kind == "photos" for kind, _ in done):
        append(photo_rows(lite0, judges))
        print("photos done", flush=True)
    classes = CLASSES if args.classes >= len(CLASSES) else sorted(random.Random(0).sample(CLASSES, args.classes))
    random_lite0 = randomized_copy(lite0, 1.0, seed=123)
    random_lite0.name = "efficientnet_lite0 (random init)"
    starts = list(range(0, len(classes), args.batch))
    for start in reversed(starts) if args.reverse else starts:
        batch = classes[start : start + args.batch]
        for kind, model in (("lite0", lite0), ("random", random_lite0)):
            done = {(r["set"], r.get("target")) for r in map(json.loads, jsonl.read_text().splitlines())}
            if kind not in args.sets or all((kind, t) in done for t in batch):
                continue
            rows = inversion_rows(kind, model, batch, args, seed=start)
            append(rows)
            print(f"{kind}: classes {start + 1}-{start + len(batch)} done, "
                  f"{rows[0]['seconds_per_class']:.0f} s/class with the checks", flush=True)


def _range(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"n": len(values), "min": values[0], "median": statistics.median(values), "max": values[-1]}


def summarize(args: argparse.Namespace) -> dict[str, Any]:
    rows = [json.loads(line) for line in Path(f"{args.out}.jsonl").read_text().splitlines()]
    thresholds = SanityThresholds()
    sampled = CLASSES if args.classes >= len(CLASSES) else sorted(random.Random(0).sample(CLASSES, args.classes))
    out: dict[str, Any] = {"thresholds": asdict(thresholds), "preset": args.preset, "classes_sampled": sampled,
                           "sets": {}}
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
        flags = [judge_row(SanityRow(**{"image": 0, "label": "", **{k: v for k, v in r.items()
                                                                      if k in SanityRow.__dataclass_fields__}}),
                           thresholds) for r in mine]
        counts = {c: sum(c in f for f in flags) for c in CHECKS}
        flagged = {r.get("name") or r["label"]: list(f) for r, f in zip(mine, flags) if f}
        out["sets"][kind] = {"n": len(mine), "ranges": ranges, "flag_counts": counts, "flagged": flagged}
        if kind != "photos":
            out["sets"][kind]["seconds_per_class"] = statistics.fmean(r["seconds_per_class"] for r in mine)
    Path(f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    for kind, s in out["sets"].items():
        print(f"== {kind} ({s['n']} images); flags: {s['flag_counts']}")
        for m, r in s["ranges"].items():
            print(f"   {m:<16} min {r['min']:8.3f}  median {r['median']:8.3f}  max {r['max']:8.3f}")
    return out


def to_sweep_folder(args: argparse.Namespace, folder: Path) -> None:
    """The calibration's inversions as a sweep folder (one PNG + result.json per class, the
    sanity rows inside), to browse with ``piikit atlas FOLDER``."""
    from piikit.images import image_png
    from piikit.interfaces.sweep_store import class_stem
    from piikit.labels import imagenet_classes

    rows = [json.loads(line) for line in Path(f"{args.out}.jsonl").read_text().splitlines()]
    names = {"lite0": "efficientnet_lite0", "random": "efficientnet_lite0 (random init)"}
    thresholds = SanityThresholds()
    for kind, model in names.items():
        for path in sorted(Path(args.out).parent.glob(f"{Path(args.out).name}_{kind}_*.pt")):
            saved = torch.load(path)
            seed = int(path.stem.rsplit("_", 1)[1])
            out = folder / ("efficientnet_lite0" if kind == "lite0" else "random_lite0")
            out.mkdir(parents=True, exist_ok=True)
            for target, image in zip(saved["targets"], saved["images"]):
                row = next(r for r in rows if r["set"] == kind and r["target"] == target)
                flags = judge_row(SanityRow(**{k: v for k, v in row.items() if k in SanityRow.__dataclass_fields__}),
                                  thresholds)
                stem = class_stem(target, imagenet_classes())
                (out / f"{stem}.png").write_bytes(image_png(image.float() / 255))
                meta = {"model": model, "targets": [{"index": target, "label": row["label"]}], "seed": seed,
                        "config": {"preset": args.preset}, "files": [f"{stem}.png"],
                        "elapsed_s": row["seconds_per_class"],
                        "sanity": {"rows": [{**row, "flags": list(flags)}], "seeds": [seed]}}
                (out / f"{stem}.result.json").write_text(json.dumps(meta, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=16, help="how many of the 48 classes (a seeded random subset)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=3, help="for the seed-stability check of Lite0's images")
    parser.add_argument("--cascade", type=lambda t: tuple(float(v) for v in t.split(",") if v.strip()),
                        default=(0.0, 0.5), help="cascading randomization levels, e.g. '0,0.5' ('' for none)")
    parser.add_argument("--batch", type=int, default=BATCH, help="classes per invert() call (quality.py: 8)")
    parser.add_argument("--out", default=str(OUT), help="path stem of the .jsonl rows and the .json summary")
    parser.add_argument("--sets", type=lambda t: t.split(","), default=["lite0", "random"],
                        help="which inversion sets to run (two processes may share the work: one each)")
    parser.add_argument("--reverse", action="store_true", help="take the batches last first")
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
