"""Inversion quality on a fixed set of 48 ImageNet classes: do other models recognise the
images, how noisy are they, and how long did they take?

Inverts ``--model`` (default Lite0) for 48 classes spread over the hierarchy (mammals,
birds, reptiles, fish, insects; vehicles, instruments, household objects, sports gear;
landscapes; food and plants), none of them the paper's showcase classes (tench, dipper,
jay, border terrier, fly, ATM, tugboat, volcano) nor the ones the repo uses elsewhere
(goldfinch, goldfish, espresso, jellyfish, pizza, monarch, zebra). Classes go in batches of
8 per :func:`piikit.invert` call (each batch mixes the groups), ``--seeds`` seeds each.
The images are scored by the other offline models (:func:`piikit.score`: Lite1 at 240 px,
Lite2 at 260 px): top-1 and top-5 hit rate, mean target probability; plus total variation
per pixel (mean absolute difference of neighbouring pixels, the two directions averaged:
~0.33 for uniform noise, 0.01-0.05 for photos) and wall-clock seconds per class.

Each metric is given per seed and as the mean over seeds with the seeds' spread (max -
min): a difference between two methods smaller than the spread is noise.

Writes ``OUT/NAME/quality.json`` (config, per-image rows, summary), a contact sheet
``OUT/NAME/sheet_seedS.png`` per seed (every image, titled with its class and Lite1/Lite2
probability) and the images as ``images_seedS.pt`` (uint8), then prints the summary.
``--table`` prints several runs' summaries side by side.

``--refine RUN`` measures PII -> DeepInversion on the same benchmark: it loads the images of
an earlier run (``OUT/RUN/images_seedS.pt``, every seed there), refines each batch of 8 with
:func:`piikit.refine` (``--method`` is then a DeepInversion preset, default ``refine``, and
``--set`` overrides :class:`piikit.DeepInversionConfig` fields) and scores the result as
above; TV and top-1 are to be compared with RUN's.

    python benchmarks/quality.py --quick                                   # 8 classes, 1 seed
    python benchmarks/quality.py --method fast --set param=fourier,border=grey
    python benchmarks/quality.py --table out/quality/*/quality.json
    python benchmarks/quality.py --refine clear_quick --method fast --set bn_weight=0.0001,tv_weight=0.003

The full run (48 classes x 2 seeds) of a ~25 s/class preset takes about 40 min on
2 CPU cores, longer when the machine is shared; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import piikit
from piikit.engine.deepinversion import DEEPINVERSION_PRESETS
from piikit.analysis.evaluate import default_evaluators, summarize
from piikit.figures import image_grid

# Six batches of eight; each batch holds 3-4 animals, 2-3 objects, a scene and a food.
CLASSES = [
    15, 291, 404, 466, 970, 933, 6, 850,  # robin, lion, airliner, bullet train, alp, cheeseburger, stingray, teddy bear
    22, 388, 409, 555, 972, 937, 71, 879,  # bald eagle, giant panda, analog clock, fire engine, cliff, broccoli, scorpion, umbrella
    100, 386, 417, 609, 973, 949, 47, 920,  # black swan, African elephant, balloon, jeep, coral reef, strawberry, chameleon, traffic light
    130, 207, 430, 779, 975, 953, 76, 402,  # flamingo, golden retriever, basketball, school bus, lakeside, pineapple, tarantula, acoustic guitar
    144, 250, 504, 817, 978, 954, 301, 566,  # pelican, Siberian husky, coffee mug, sports car, seashore, banana, ladybug, French horn
    94, 354, 508, 671, 979, 930, 397, 985,  # hummingbird, Arabian camel, computer keyboard, mountain bike, valley, French loaf, puffer, daisy
]
QUICK = CLASSES[:8]
BATCH = 8
METRICS = ("top1", "top5", "prob", "tv")


def parse_set(text: str | None) -> dict[str, Any]:
    """``"param=fourier,lr=0.05"`` -> ``{"param": "fourier", "lr": 0.05}`` (JSON values,
    bare words as strings)."""
    out: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def in_batches(classes: list[int], seed: int, run: Callable[[slice, int], piikit.InversionResult],
               verb: str = "done") -> tuple[torch.Tensor, float]:
    """``run(batch, seed)`` for every slice of :data:`BATCH` classes; the images and the
    total seconds."""
    images, seconds = [], 0.0
    for start in range(0, len(classes), BATCH):
        batch = slice(start, start + BATCH)
        result = run(batch, seed + start)
        images.append(result.images)
        seconds += result.elapsed_s
        n = len(classes[batch])
        print(f"  seed {seed}: classes {start + 1}-{start + n} {verb}, {result.elapsed_s / n:.1f} s/class", flush=True)
    return torch.cat(images), seconds


def contact_sheet(images: torch.Tensor, classes: list[int], rows: list[dict[str, Any]], path: Path) -> None:
    probs: dict[int, list[str]] = {}
    for r in rows:
        probs.setdefault(r["image"], []).append(f"{r['prob']:.2f}")
    names = [piikit.labels.label(c).split(",")[0] for c in classes]
    titles = [f"{name[:22]}\n{' / '.join(probs[i])}" for i, name in enumerate(names)]
    fig = image_grid(images, titles, ncols=8, size=1.7)
    fig.savefig(path, dpi=90)


def summarize_seeds(per_seed: dict[int, dict[str, dict[str, float]]], seconds: dict[int, float], n: int) -> dict[str, Any]:
    """Mean over seeds and spread (max - min) per evaluator and metric."""
    evaluators = next(iter(per_seed.values())).keys()
    out: dict[str, Any] = {}
    for ev in evaluators:
        out[ev] = {}
        for m in METRICS:
            values = [per_seed[s][ev][m] for s in per_seed]
            out[ev][m] = {"mean": statistics.fmean(values), "spread": max(values) - min(values), "per_seed": values}
    s_per_class = [seconds[s] / n for s in seconds]
    out["s_per_class"] = {"mean": statistics.fmean(s_per_class), "spread": max(s_per_class) - min(s_per_class),
                          "per_seed": s_per_class}
    return out


def merge_seeds(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of the same config and classes made separately per seed, as one run each."""
    merged: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = json.dumps([run["config"], run["classes"]], sort_keys=True)
        if key not in merged:
            merged[key] = {**run, "seeds": [], "per_seed": {}, "seconds": {}}
        into = merged[key]
        for i, seed in enumerate(run["seeds"]):
            into["seeds"].append(seed)
            into["per_seed"][seed] = {ev: {m: s[m]["per_seed"][i] for m in METRICS}
                                      for ev, s in run["summary"].items() if ev != "s_per_class"}
            into["seconds"][seed] = run["summary"]["s_per_class"]["per_seed"][i] * run["n_classes"]
    for run in merged.values():
        run["summary"] = summarize_seeds(run.pop("per_seed"), run.pop("seconds"), run["n_classes"])
    return list(merged.values())


def format_table(runs: list[dict[str, Any]]) -> str:
    """One line per run: per evaluator top-1 / top-5 / prob, then TV and s/class, each
    ``mean±spread`` over seeds."""
    lines = []
    for run in runs:
        s = run["summary"]
        evs = [k for k in s if k != "s_per_class"]
        if not lines:
            head = "  ".join(f"{ev.replace('efficientnet_', ''):>5} top1  top5  prob" for ev in evs)
            lines.append(f"{'run':<50} {'n':>3} {'seeds':>5}  {head}  TV           s/class")
        cells = "  ".join(
            f"{s[ev]['top1']['mean']:.2f}±{s[ev]['top1']['spread']:.2f} {s[ev]['top5']['mean']:.2f} {s[ev]['prob']['mean']:.2f}"
            for ev in evs
        )
        tv = s[evs[0]]["tv"]
        t = s["s_per_class"]
        lines.append(f"{run['name'][-50:]:<50} {run['n_classes']:>3} {len(run['seeds']):>5}  {cells}  "
                     f"{tv['mean']:.3f}±{tv['spread']:.3f}  {t['mean']:.1f}±{t['spread']:.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default=None,
                        help="preset name (default fast; with --refine a DeepInversion preset, default refine)")
    parser.add_argument("--refine", metavar="RUN", help="refine the images of this earlier run by DeepInversion")
    parser.add_argument("--set", dest="overrides", help="config overrides, e.g. 'param=fourier,border=grey,lr=0.05'")
    parser.add_argument("--name", help="run name (default: method and overrides)")
    parser.add_argument("--quick", action="store_true", help="the first 8 classes and one seed, for iteration")
    parser.add_argument("--classes", type=int, default=None, help="use only the first N classes (a multiple of 8)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 (0 with --quick)")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="out/quality")
    parser.add_argument("--table", nargs="+", metavar="JSON",
                        help="print these runs' summaries (runs of one config with other seeds merged) and exit")
    args = parser.parse_args()

    if args.table:
        print(format_table(merge_seeds([json.loads(Path(p).read_text()) for p in args.table])))
        return

    overrides = parse_set(args.overrides)
    inits: dict[int, torch.Tensor] = {}
    if args.refine:
        source = Path(args.out) / args.refine
        earlier = json.loads((source / "quality.json").read_text())
        args.method = args.method or "refine"
        config: Any = DEEPINVERSION_PRESETS[args.method].replace(**overrides)
        classes = earlier["classes"]
        seeds = args.seeds or earlier["seeds"]
        inits = {s: torch.load(source / f"images_seed{s}.pt").float() / 255 for s in seeds}
        prefix = f"{args.refine}+di_{args.method}"
    else:
        args.method = args.method or "fast"
        config = piikit.make_config(args.method, **overrides)
        classes = QUICK if args.quick else CLASSES[: args.classes or len(CLASSES)]
        seeds = args.seeds or ([0] if args.quick else [0, 1])
        prefix = args.method
    name = args.name or re.sub(r"[^A-Za-z0-9_.=+-]+", "_", prefix + ("_" + args.overrides if args.overrides else ""))
    name += "_quick" if args.quick and not args.refine else ""
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    model = piikit.load_model(args.model)
    evaluators = default_evaluators(args.model)
    print(f"{name}: {len(classes)} classes x seeds {seeds}, {torch.get_num_threads()} threads", flush=True)

    rows: list[dict[str, Any]] = []
    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    seconds: dict[int, float] = {}
    for seed in seeds:
        if args.refine:
            images, seconds[seed] = in_batches(classes, seed, lambda b, s: piikit.refine(
                model, inits[seed][b], classes[b], args.method, seed=s, device=args.device, progress=False, **overrides),
                "refined")
        else:
            images, seconds[seed] = in_batches(classes, seed, lambda b, s: piikit.invert(
                model, classes[b], config, seed=s, device=args.device, progress=True))
        seed_rows = piikit.score(evaluators, images, classes, device=args.device)
        per_seed[seed] = summarize(seed_rows)
        contact_sheet(images, classes, seed_rows, out / f"sheet_seed{seed}.png")
        torch.save((images * 255).round().to(torch.uint8), out / f"images_seed{seed}.pt")
        rows += [{**r, "seed": seed} for r in seed_rows]

    report = {
        "name": name, "method": args.method, "refines": args.refine, "overrides": overrides, "config": config.to_dict(),
        "model": args.model, "classes": classes, "n_classes": len(classes), "seeds": seeds,
        "threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(), "device": args.device,
        "summary": summarize_seeds(per_seed, seconds, len(classes)), "rows": rows,
    }
    (out / "quality.json").write_text(json.dumps(report, indent=1))
    print(format_table([report]))
    print(f"wrote {out}/")


if __name__ == "__main__":
    main()
