"""Does a preset hold on classes it was not tuned on? (issue 32, item 4)

A preset tuned on a set of classes can fit them: ``quick`` scored 0.96 / 0.96 top-1 on the
48 classes it was chosen on and 0.92 / 0.83 on 12 others. So a candidate is tuned on one
random draw of classes and reported on a second, disjoint one:

    tune     the first 48 of ``torch.randperm(1000, generator=torch.Generator().manual_seed(32))``
    report   the next 48 of the same permutation (no class in common with ``tune``)

Neither draw was chosen for transferring well; both are sorted. For a candidate (a name of
``pareto.CANDIDATES`` or a preset), a draw, a thread count and a seed, Lite0 inverts the
draw 8 classes per :func:`piikit.invert` call on the CPU, Lite1 and Lite2 score the images
(rank, target probability) and TV per pixel measures noise. Before the first batch the bare
*floor step* (one forward + input-gradient backward of Lite0 at 8 x 224², ``pareto.floor_seconds``)
is timed in the same process at the same threads, so seconds per class divided by it
(*floor steps per class*) compare runs made at different loads; paired whole-process timings
(``benchmarks/levers.py --presets A,B``) give the ratio between two presets.

Results accumulate in ``--json`` (default ``benchmarks/results/preset_transfer.json``), one
record per (candidate, draw, threads, seed), rewritten after every batch of 8, so a stopped
run resumes where it was (runs side by side each need their own file: ``--table`` reads several); each batch's images are saved as a strip of 112-px thumbnails
beside it (``preset_transfer/``) to look at. ``--table`` prints, per record, the mean over
classes with a 95 % bootstrap interval over classes, and whether the issue's bar holds:
top-1 >= 0.90 on both evaluators, top-5 >= 0.97 on both, TV <= 0.04.

    OMP_NUM_THREADS=1 python benchmarks/preset_transfer.py --candidate quick --draw tune --threads 1
    python benchmarks/preset_transfer.py --candidate quick --draw report --threads 2
    python benchmarks/preset_transfer.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import piikit  # noqa: E402
from ablations import thumbnail_strip, write_atomic  # noqa: E402
from pareto import CANDIDATES, MODEL, floor_seconds, work_per_class  # noqa: E402
from piikit.analysis.ablations import bootstrap_interval  # noqa: E402
from piikit.analysis.evaluate import default_evaluators  # noqa: E402

HERE = Path(__file__).resolve().parent
DRAW_SEED = 32
N_CLASSES = 48
BATCH = 8
BAR = {"top1": 0.90, "top5": 0.97, "tv": 0.04}


def draw(name: str, n: int = N_CLASSES, seed: int = DRAW_SEED) -> list[int]:
    """The ``tune`` or ``report`` classes: consecutive slices of one random permutation."""
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(seed)).tolist()
    start = {"tune": 0, "report": n}[name]
    return sorted(order[start:start + n])


def candidate_config(name: str) -> piikit.InversionConfig:
    preset, overrides = CANDIDATES.get(name, (name, {}))
    return piikit.make_config(preset, **overrides)


def record_key(candidate: str, draw_name: str, threads: int, seed: int, trial: str = "") -> str:
    return f"{candidate} | {draw_name} | {threads}t | seed {seed}" + (f" | {trial}" if trial else "")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    records: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    # A trial (fewer classes, a smaller image) is kept apart from the measurements.
    trial = ", ".join(part for part in (f"first {args.limit}" if args.limit else "",
                                        f"{args.size} px" if args.size else "") if part)
    key = record_key(args.candidate, args.draw, args.threads, args.seed, trial)
    config = candidate_config(args.candidate)
    if args.size:
        config = config.replace(image_size=args.size)
    classes = draw(args.draw)[: args.limit or None]
    model = piikit.load_model(MODEL)
    evaluators = default_evaluators(MODEL)
    record = records.get(key) or {
        "candidate": args.candidate, "draw": args.draw, "draw_seed": DRAW_SEED, "threads": args.threads,
        "seed": args.seed, "classes": classes, "config": config.to_dict(), "work": round(work_per_class(config.to_dict()), 1),
        "floor_s": floor_seconds(model), "seconds": 0.0, "images": [], "load": [os.getloadavg()[0]],
        "command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__}
    done = {img["target"] for img in record["images"]}
    thumbs = args.json.with_suffix("") / (args.candidate + (f" {trial}" if trial else "")).replace(" ", "_").replace(",", "")
    thumbs.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(classes), BATCH):
        batch = classes[start:start + BATCH]
        if set(batch) <= done:
            continue
        result = piikit.invert(model, batch, config, seed=args.seed + start, device="cpu", progress=False)
        rows = piikit.score(evaluators, result.images, batch, device="cpu")
        for i, target in enumerate(batch):
            mine = [r for r in rows if r["image"] == i]
            record["images"].append({"target": target, "tv": round(mine[0]["tv"], 5),
                                     "prob": {r["evaluator"]: round(r["prob"], 5) for r in mine},
                                     "rank": {r["evaluator"]: r["rank"] for r in mine}})
        record["seconds"] += result.elapsed_s
        record["load"].append(os.getloadavg()[0])
        record["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        write_atomic(thumbs / f"{args.draw}_{args.threads}t_seed{args.seed}_{start:02d}.jpg",
                     thumbnail_strip(result.images))
        records[key] = record
        write_atomic(args.json, json.dumps(records, indent=1).encode())
        print(f"{key}: classes {start + 1}-{start + len(batch)}, {result.elapsed_s / len(batch):.1f} s/class", flush=True)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """Per metric, the mean over the record's images and a 95 % bootstrap interval over classes."""
    images = record["images"]
    evaluators = sorted(images[0]["rank"])
    values: dict[str, np.ndarray] = {"tv": np.array([[img["tv"] for img in images]])}
    for ev in evaluators:
        short = ev.replace("efficientnet_", "")
        values[f"top1 {short}"] = np.array([[float(img["rank"][ev] == 1) for img in images]])
        values[f"top5 {short}"] = np.array([[float(img["rank"][ev] <= 5) for img in images]])
        values[f"prob {short}"] = np.array([[img["prob"][ev] for img in images]])
    out = {name: (float(v.mean()), bootstrap_interval(v, axis=1)) for name, v in values.items()}
    n = len(images)
    out["floor steps/class"] = (record["seconds"] / n / record["floor_s"], None)
    out["meets bar"] = all(m >= BAR["top1"] for k, (m, _) in out.items() if k.startswith("top1")) and all(
        m >= BAR["top5"] for k, (m, _) in out.items() if k.startswith("top5")) and out["tv"][0] <= BAR["tv"]
    return out


def table(records: dict[str, Any]) -> str:
    lines = []
    for key, record in records.items():
        s = summary(record)
        n = len(record["images"])
        cells = [f"{name} {m:.3f}" + (f" [{ci[0]:.2f},{ci[1]:.2f}]" if ci else "")
                 for name, (m, ci) in ((k, v) for k, v in s.items() if k != "meets bar")]
        lines.append(f"{key} ({n} classes, work {record['work']:.0f}, load {min(record['load']):.1f}-{max(record['load']):.1f}; "
                     f"bar {'met' if s['meets bar'] else 'missed'}):\n    " + "; ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", help=f"a preset or one of pareto.py's candidates: {', '.join(CANDIDATES)}")
    parser.add_argument("--draw", choices=("tune", "report"), default="tune")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="a trial: only the first N classes of the draw")
    parser.add_argument("--size", type=int, help="a trial: images of this side instead of the model's")
    parser.add_argument("--json", type=Path, nargs="+", default=[HERE / "results" / "preset_transfer.json"],
                        help="the results file (runs side by side need one each); with --table, any number")
    parser.add_argument("--table", action="store_true", help="print the results files' table and exit")
    args = parser.parse_args()
    if not args.table:
        if not args.candidate or len(args.json) != 1:
            parser.error("a run needs --candidate and one --json file")
        args.json = args.json[0]
        run(args)
        args.json = [args.json]
    records: dict[str, Any] = {}
    for path in args.json:
        records.update(json.loads(path.read_text()))
    print(table(records))


if __name__ == "__main__":
    main()
