"""PII alone vs DeepInversion alone vs PII → DeepInversion (PII §5.2, Fig. 9), measured.

For a few classes, invert ``--model`` (default Lite0) three ways and score the images with
*other* models (Lite1, Lite2; see :mod:`piikit.evaluate`): mean target probability, top-1 /
top-5 hit rates, and total variation per pixel (noise; about 0.33 for uniform noise,
0.01-0.05 for photos).

* ``pii``: Plug-In Inversion with ``--preset`` (default ``fast``).
* ``di``: DeepInversion from noise with the same number of steps as PII, split 2:1 between
  the 112 px warm-up and full size as in the published multi-resolution setting.
* ``pii+di``: DeepInversion started from the PII images, ``--refine-steps`` more steps.

Each DeepInversion variant runs once per ``--bn-weight`` (the published 0.01 is tuned for
ResNet-50; Lite models' BatchNorm statistics are much larger). PNGs of every method go to
``OUT/<method>/`` and a grid of all of them (rows: methods, columns: classes) to
``OUT/comparison.png``; the numbers to ``OUT/results.json``.

    python benchmarks/deepinversion_compare.py out/di_compare --classes 980 11 1
    python benchmarks/deepinversion_compare.py out/di_compare --bn-weight 0.01 --bn-weight 0.001
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import torch

import piikit
from piikit.refinement.deepinversion import refine
from piikit.analysis.evaluate import score, summarize

EVALUATORS = ["efficientnet_lite1", "efficientnet_lite2"]


def measure(name: str, result: piikit.InversionResult, seconds: float, steps: int) -> dict[str, Any]:
    rows = score(EVALUATORS, result.images, result.targets, device="cpu")
    summary = summarize(rows)
    row: dict[str, Any] = {
        "method": name, "steps": steps, "seconds": round(seconds, 1),
        "self_prob": round(float(result.final_probs.mean()), 3) if result.final_probs is not None else None,
        "tv_per_pixel": round(sum(r["tv"] for r in rows[: len(result.targets)]) / len(result.targets), 4),
    }
    for evaluator, s in summary.items():
        row[evaluator] = {k: round(v, 3) for k, v in s.items() if k in ("prob", "top1", "top5")}
    row["per_image"] = [{k: r[k] for k in ("evaluator", "label", "prob", "rank", "tv")} for r in rows]
    return row


def save_grid(results: list[tuple[str, piikit.InversionResult]], path: Path, cell: int = 224) -> None:
    """One row per method, one column per class, the method's name on the left."""
    from PIL import Image, ImageDraw

    label_w = 150
    cols = len(results[0][1].targets)
    grid = Image.new("RGB", (label_w + cols * cell, len(results) * cell), "white")
    draw = ImageDraw.Draw(grid)
    for r, (name, result) in enumerate(results):
        draw.text((6, r * cell + cell // 2), name, fill="black")
        for c, img in enumerate(result.images):
            array = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            grid.paste(Image.fromarray(array).resize((cell, cell), Image.BILINEAR), (label_w + c * cell, r * cell))
    for c, lab in enumerate(results[0][1].labels):
        draw.text((label_w + c * cell + 4, 4), lab, fill="white")
    grid.save(path)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| method | steps | s | Lite0 p | Lite1 p | Lite1 top-1/5 | Lite2 p | Lite2 top-1/5 | TV/px |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        l1, l2 = r["efficientnet_lite1"], r["efficientnet_lite2"]
        lines.append(
            f"| {r['method']} | {r['steps']} | {r['seconds']} | {r['self_prob']} | {l1['prob']} | "
            f"{l1['top1']:.2f}/{l1['top5']:.2f} | {l2['prob']} | {l2['top1']:.2f}/{l2['top5']:.2f} | "
            f"{r['tv_per_pixel']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="directory for the PNGs, the comparison grid and results.json")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--classes", type=int, nargs="+", default=[980, 11, 1])  # volcano, goldfinch, goldfish
    parser.add_argument("--preset", default="fast", help="the PII preset")
    parser.add_argument("--steps-per-stage", type=int, help="override the PII preset's steps per stage")
    parser.add_argument("--ensemble", type=int, help="override the PII preset's ensemble")
    parser.add_argument("--refine-steps", type=int, default=100, help="DeepInversion steps after PII")
    parser.add_argument("--bn-weight", type=float, action="append",
                        help="BatchNorm prior weight(s) for the DeepInversion runs (default: the published 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = piikit.load_model(args.model)
    common = dict(seed=args.seed, device="cpu", progress=False)
    bn_weights = args.bn_weight or [0.01]

    rows: list[dict[str, Any]] = []
    images: list[tuple[str, piikit.InversionResult]] = []

    def record(name: str, result: piikit.InversionResult, seconds: float, steps: int) -> None:
        result.save(out / re.sub(r"[^a-z0-9.]+", "_", name.replace("+", "_then_")))
        images.append((name, result))
        rows.append(measure(name, result, seconds, steps))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_image"}), flush=True)

    t0 = time.perf_counter()
    pii = piikit.invert(model, args.classes, args.preset, steps_per_stage=args.steps_per_stage,
                        ensemble=args.ensemble, **common)
    budget = pii.config.total_steps
    record("pii", pii, time.perf_counter() - t0, budget)

    warmup = round(budget * 2 / 3)  # the published 2k : 1k split of the multi-resolution setting
    for w in bn_weights:
        t0 = time.perf_counter()
        di = refine(model, targets=args.classes, preset="paper", warmup_steps=warmup, steps=budget - warmup,
                    bn_weight=w, **common)
        record(f"di bn={w:g}", di, time.perf_counter() - t0, budget)
        t0 = time.perf_counter()
        chained = refine(model, init=pii, preset="fast", steps=args.refine_steps, bn_weight=w, **common)
        record(f"pii+di bn={w:g}", chained, time.perf_counter() - t0, budget + args.refine_steps)

    save_grid(images, out / "comparison.png")
    meta = {"args": vars(args), "pii_config": pii.config.to_dict(), "rows": rows,
            "torch_threads": torch.get_num_threads()}
    (out / "results.json").write_text(json.dumps(meta, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
