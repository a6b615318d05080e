"""The paper's Fig. 6 grid at the paper's own budget, on a GPU, in at most 8 minutes.

Pixel PII exactly as the paper runs it (the ``paper`` preset: 224 px, 7 stages x 400 Adam
steps, ensemble 32, jitter 32, ColorShift alpha = beta = 1), for the eight cells of the paper's
Fig. 6 (bottom): the schedule (zoom + centering, zoom only, centering only, neither) x
ColorShift (on, off). ``--n-classes`` (4) classes, every ``16 / n``-th of
``benchmarks/ablations.py``'s random draw (so a subset of the CPU benchmark's classes), all
in one :func:`piikit.invert` call per cell; seed 0. Lite1 and Lite2 score the images as in
``ablations.py``, whose unit records, thumbnails, bootstrap intervals and tables this reuses
(the base is called ``paper``). Results: ``piikit/data/ablations_gpu/`` (``ablations.json``,
``thumbs/paper/CONDITION/seed0.jpg``).

Does it fit 8 minutes of an H200? What was measured there (``benchmarks/results/
gpu_check_h200.txt``, ``docs/benchmarks.md``): the ``paper`` preset took 44 ms a step for 4
targets x 32 copies in one pass (128 samples; the stages' 56-224 px images are on average 0.45
of a full-size one), and ``quick`` 64 ms a step for 32 samples in 4 passes of 8 (about 16 ms a
pass): a pass costs ~15 ms of kernel launches whatever its size, the 128 samples ~30 ms more.
One cell is 7 x 400 = 2,800 steps:

* zoom + centering and zoom only (staged): 2,800 x 44 ms = 123 s;
* centering only and neither (the model sees 224 px at every step): if the 30 ms grows with
  the pixels, 15 + 30 / 0.45 = 82 ms a step, 230 s;
* the grid, one cell after another: 4 x 123 + 4 x 230 = 1,412 s (24 min): it does not fit.

So the cells run in order of what they answer: zoom + centering (the base every paired
difference needs), neither, zoom only, centering only, then the ColorShift-off row;
``--jobs`` (2) at a time, each in its own process: where a step is launch-bound the two
fill each other's gaps (up to twice the throughput), where it is arithmetic-bound they share
the GPU and take as long as one after the other. BatchNorm is folded into the convolutions
(``fold_bn``, rounding only: one kernel fewer per layer; 1.2-1.7x on a CPU, not yet measured
on a GPU). Expected in 450 s: zoom + centering, neither and zoom only (476 s of one-at-a-time
work at the estimates above, less if the pair overlaps). No cell starts in the last
``START_MARGIN_S`` (60 s); a cell still running at ``--budget-s`` (450 s) stops, is scored as it
is and is recorded with ``"interrupted": true`` and the steps it did, so a call ends within 8
minutes. A rerun skips finished cells and redoes interrupted ones: two 8-minute calls (two
sessions with a GPU, or one with 15 minutes) complete the grid.

    python benchmarks/ablations_gpu.py                                  # on the GPU machine
    timeout 480 python benchmarks/ablations_gpu.py --out $OUT/ablations_gpu   # on a lent machine: then copy the
                                                                        # folder to piikit/data/ablations_gpu
    python benchmarks/ablations_gpu.py --device cpu --steps 2 --ensemble 2 --size 32 --out /tmp/g   # a CPU check
    python benchmarks/ablations.py --table --out piikit/data/ablations_gpu                          # the table
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import piikit  # noqa: E402
from piikit.analysis.evaluate import default_evaluators  # noqa: E402
from ablations import (N_CLASSES, DRAW_SEED, condition_config, draw_classes, format_tables, load_report,  # noqa: E402
                       machine, run_unit, summarize, unit_key, write_atomic)

BASE = "paper"
#: Fig. 6's cells in the order they run (see the module docstring).
CELLS = ["base", "no_zoom_center", "zoom_only", "center_only",
         "no_colorshift", "no_zoom_center_no_colorshift", "zoom_only_no_colorshift", "center_only_no_colorshift"]
START_MARGIN_S = 60.0
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "piikit" / "data" / "ablations_gpu"
SEED = 0


class Deadline:
    """A step callback that stops the run at an absolute time (``time.time()``) and
    remembers how far it got."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.interrupted = False
        self.steps = 0

    def __call__(self, state: piikit.StepState) -> None:
        self.steps = state.global_step
        if time.time() > self.at:
            self.interrupted = True
            state.stop("deadline")


def open_report(args: argparse.Namespace) -> dict[str, Any]:
    """The results file in ``args.out`` (or a new one), with this run recorded."""
    settings = {"model": args.model, "evaluators": default_evaluators(args.model), "size": args.size,
                "draw_seed": args.draw_seed, "classes": classes_for(args.n_classes, args.draw_seed)}
    report = load_report(args.out, settings)
    report["labels"] = [piikit.labels.label(c) for c in report["classes"]]
    report["runs"].append({"command": "python benchmarks/ablations_gpu.py " + " ".join(sys.argv[1:]),
                           "started": now(), "machine": {**machine(), **gpu()}})
    args.out.mkdir(parents=True, exist_ok=True)
    return report


def pending(report: dict[str, Any], cells: list[str]) -> list[str]:
    """The cells not run yet, or stopped by a deadline."""
    units = report["units"]
    return [c for c in cells if unit_key(BASE, c, SEED) not in units or units[unit_key(BASE, c, SEED)].get("interrupted")]


def run_cells(args: argparse.Namespace, cells: list[str], deadline: float) -> None:
    """Run the pending ``cells`` one after another in this process into ``args.out``."""
    report = open_report(args)
    todo = pending(report, cells)
    model = piikit.load_model(args.model) if todo else None
    for cell in todo:
        if time.time() > deadline - START_MARGIN_S:
            print(f"{cell}: not started, too close to the deadline", flush=True)
            break
        config = condition_config(BASE, cell, args.size).replace(steps_per_stage=args.steps, ensemble=args.ensemble)
        stop = Deadline(deadline)
        unit = run_unit(model, report, BASE, cell, SEED, args.out, args.device, config=config, callbacks=[stop])
        unit.update(interrupted=stop.interrupted, steps_done=stop.steps, total_steps=config.total_steps)
        report["units"][unit_key(BASE, cell, SEED)] = unit
        report["updated"] = now()
        report["summary"] = summarize(report)
        write_atomic(args.out / "ablations.json", json.dumps(report, indent=1).encode())
        print(f"{cell}: {unit['seconds']:.0f} s, {stop.steps}/{config.total_steps} steps", flush=True)


def classes_for(n: int, draw_seed: int) -> list[int]:
    """Every (16 / n)-th class of the CPU benchmark's draw."""
    if N_CLASSES % n:
        raise SystemExit(f"--n-classes must divide {N_CLASSES}")
    return draw_classes(N_CLASSES, draw_seed)[:: N_CLASSES // n]


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def gpu() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"gpu": None}
    return {"gpu": torch.cuda.get_device_name(), "cuda": torch.version.cuda}


def run_parallel(args: argparse.Namespace, cells: list[str], deadline: float) -> None:
    """Each cell in its own process (``--jobs`` at a time), into its own folder; then merged
    into ``args.out``."""
    parts = Path(tempfile.mkdtemp(prefix="ablations_gpu_"))
    base_cmd = [sys.executable, str(Path(__file__).resolve()), "--jobs", "1", "--deadline", str(deadline),
                "--device", args.device, "--size", str(args.size), "--steps", str(args.steps),
                "--ensemble", str(args.ensemble), "--n-classes", str(args.n_classes),
                "--draw-seed", str(args.draw_seed), "--model", args.model]

    def one(cell: str) -> int:
        if time.time() > deadline - START_MARGIN_S:
            print(f"{cell}: not started, too close to the deadline", flush=True)
            return 0
        with open(parts / f"{cell}.log", "w") as log:
            code = subprocess.call([*base_cmd, "--cells", cell, "--out", str(parts / cell)], stdout=log,
                                   stderr=subprocess.STDOUT)
        done = [line for line in (parts / f"{cell}.log").read_text().splitlines() if line.startswith(f"{cell}:")]
        print(f"{cell}: exit {code}; {' '.join(done)}", flush=True)
        return code

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(one, cells))
    report = open_report(args)
    for cell in cells:
        part = parts / cell / "ablations.json"
        if not part.exists():
            continue
        unit = json.loads(part.read_text())["units"][unit_key(BASE, cell, SEED)]
        report["units"][unit_key(BASE, cell, SEED)] = unit
        target = args.out / unit["thumbs"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(parts / cell / unit["thumbs"], target)
    report["summary"] = summarize(report)
    report["updated"] = now()
    write_atomic(args.out / "ablations.json", json.dumps(report, indent=1).encode())
    shutil.rmtree(parts)
    if any(codes):
        raise SystemExit(f"cells failed: {', '.join(c for c, code in zip(cells, codes) if code)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=CELLS)
    parser.add_argument("--n-classes", type=int, default=4)
    parser.add_argument("--draw-seed", type=int, default=DRAW_SEED)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=400, help="steps per stage (paper: 400)")
    parser.add_argument("--ensemble", type=int, default=32, help="paper: 32")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--jobs", type=int, default=2, help="cells at once, each in its own process (1: in this one)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="every cell stops this long after the start")
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # absolute, passed to the processes
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this is the GPU benchmark (try --device cpu at a tiny budget)")
    deadline = args.deadline or time.time() + args.budget_s
    existing = args.out / "ablations.json"
    todo = pending(json.loads(existing.read_text()) if existing.exists() else {"units": {}}, args.cells)
    if args.jobs > 1 and len(todo) > 1:
        run_parallel(args, todo, deadline)
    else:
        run_cells(args, args.cells, deadline)
    if args.deadline is None:  # not one of run_parallel's processes
        print(format_tables(json.loads((args.out / "ablations.json").read_text())))


if __name__ == "__main__":
    main()
