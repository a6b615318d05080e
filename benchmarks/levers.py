"""Each process-level speed lever of an inversion, measured in pairs on this machine.

A lever is kept in a preset only if it pays here. Each lever is timed as two whole
processes, without it (A) and with it (B), in turn — A B, then B A, and so on, so a drift in
the machine's speed falls on both — and the ratio B / A is taken pair by pair; the table
gives its median and range. Each process inverts ``--classes`` classes of Lite0 with
``--preset`` at ``--steps`` steps per stage (the stages, sizes and ensemble of the preset:
the same mix of image sizes as the full run) and reports the seconds of the inversion
alone (imports and model loading are left out; a warm-up step runs first).

Levers:

``fold_bn``
    BatchNorm folded into the convolutions (:mod:`piikit.models.folding`);
``amp``
    bfloat16 autocast of the forward pass (CPUs with AVX512-BF16 or AMX);
``channels_last``
    channels-last memory format of the model and the inputs;
``malloc``
    glibc kept from returning freed memory to the kernel (``piikit.interfaces.process.tune_malloc``,
    which the ``piikit`` command applies at start);
``micro_batch``
    one forward pass for all images x copies instead of passes of the preset's
    ``micro_batch``;
``compile_model``
    ``torch.compile`` of the network (the warm-up step runs every stage once, so each
    stage's input shape is compiled before the clock starts).

Each lever is toggled against the preset as it is (``fold_bn`` off against on whatever the
preset says, and so on).

``--presets A,B`` times two presets (or ``benchmarks/pareto.py``'s candidates) against each other the same way instead, each at
``--fraction`` of its own steps per stage and refine steps (the same stages and sizes, so
the same mix of work), and gives seconds per class scaled to the full run.

    python benchmarks/levers.py                       # every lever, 3 pairs each
    python benchmarks/levers.py --levers fold_bn,amp --pairs 5
    python benchmarks/levers.py --presets clear,quick --fraction 0.25
    python benchmarks/levers.py --presets "quick,quick 4x32 + polish 30"   # or pareto.py's candidates
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LEVERS = ("fold_bn", "amp", "channels_last", "malloc", "micro_batch", "compile_model")


def one_run(args: argparse.Namespace) -> None:
    """The child process: one timed inversion, its seconds printed as JSON."""
    import torch

    import piikit
    from piikit.interfaces.process import tune_malloc

    torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = json.loads(args.overrides)
    malloc = overrides.pop("malloc", False)
    preset = overrides.pop("preset", args.preset)
    if malloc:
        tune_malloc()
    model = piikit.load_model("efficientnet_lite0")
    config = piikit.make_config(preset, **overrides)
    config = config.replace(steps_per_stage=overrides.get("steps_per_stage", args.steps))
    targets = list(range(0, 1000, 1000 // args.classes))[: args.classes]
    # One step per stage at the timed run's shapes: warms the allocator and, with compile_model, compiles every shape.
    piikit.invert(model, targets, config.replace(steps_per_stage=1, refine_steps=min(config.refine_steps, 1)),
                  device="cpu", progress=False)
    start = time.perf_counter()
    piikit.invert(model, targets, config, device="cpu", progress=False, seed=0)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def _child(args: argparse.Namespace, overrides: dict[str, Any]) -> float:
    command = [sys.executable, __file__, "--child", json.dumps(overrides), "--preset", args.preset,
               "--steps", str(args.steps), "--classes", str(args.classes), "--threads", str(args.threads)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=HERE.parent).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def toggles(lever: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(without, with) overrides of one lever."""
    if lever == "micro_batch":
        return {}, {"micro_batch": 1 << 20}  # larger than any batch: one pass (None would mean "keep")
    return {lever: False}, {lever: True}


def measure(lever: str, args: argparse.Namespace, sides: tuple[dict[str, Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    without, with_ = sides or toggles(lever)
    a_times, b_times = [], []
    for pair in range(args.pairs):
        order = [(without, a_times), (with_, b_times)]
        for overrides, times in order if pair % 2 == 0 else order[::-1]:
            times.append(_child(args, overrides))
    ratios = [b / a for a, b in zip(a_times, b_times)]
    return {"lever": lever, "without_s": a_times, "with_s": b_times, "ratio": ratios,
            "median_ratio": statistics.median(ratios), "load": os.getloadavg()[0]}


def compare_presets(args: argparse.Namespace) -> None:
    import piikit

    from pareto import CANDIDATES

    a, b = args.presets.split(",")
    specs = [CANDIDATES.get(name, (name, {})) for name in (a, b)]  # a preset, or one of pareto.py's candidates
    configs = [piikit.make_config(preset, **overrides) for preset, overrides in specs]
    sides = tuple({"preset": preset, **overrides, "steps_per_stage": max(1, round(c.steps_per_stage * args.fraction)),
                   "refine_steps": round(c.refine_steps * args.fraction)} for (preset, overrides), c in zip(specs, configs))
    row = measure(f"{a} vs {b}", args, sides)  # type: ignore[arg-type]
    scale = [side["steps_per_stage"] / c.steps_per_stage for side, c in zip(sides, configs)]
    per_class = [statistics.median(row[k]) / s / args.classes for k, s in zip(("without_s", "with_s"), scale)]
    print(f"{args.classes} classes, {args.threads} threads, {args.pairs} pairs, load average {row['load']:.1f}: "
          f"{a} {per_class[0]:.1f} s/class, {b} {per_class[1]:.1f} s/class (scaled from {args.fraction:g} of the steps); "
          f"{b}/{a} median {row['median_ratio']:.2f} ({min(row['ratio']):.2f}-{max(row['ratio']):.2f}) at equal "
          f"fractions of their steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated, from {', '.join(LEVERS)}")
    parser.add_argument("--preset", default="clear")
    parser.add_argument("--steps", type=int, default=6, help="steps per stage of each timed run")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--presets", help="A,B: time two presets against each other instead of the levers")
    parser.add_argument("--fraction", type=float, default=0.25, help="with --presets: this fraction of each one's steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "levers.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.overrides = args.child
        one_run(args)
        return
    import torch

    if args.presets:
        compare_presets(args)
        return
    rows = []
    print(f"{args.preset}, {args.classes} classes x {args.steps} steps per stage, {args.threads} threads, "
          f"{args.pairs} pairs; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'lever':<14} {'without s':>10} {'with s':>8} {'with/without (median, range)':>30}")
    for lever in args.levers.split(","):
        row = measure(lever, args)
        rows.append(row)
        print(f"{lever:<14} {statistics.median(row['without_s']):>10.1f} {statistics.median(row['with_s']):>8.1f} "
              f"{row['median_ratio']:>14.2f} ({min(row['ratio']):.2f}-{max(row['ratio']):.2f})", flush=True)
    args.json.write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/levers.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs",
        "preset": args.preset, "steps": args.steps, "classes": args.classes, "threads": args.threads, "rows": rows,
    }, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
