"""The GPU check: everything only a CUDA machine can show, in one go (at most 8 minutes on
one GPU), printed as one table. Run it through ``benchmarks/gpu_check.sh``.

1. the test suite's CUDA paths: ``pytest --device cuda`` on the step loop, the
   parameterizations (amp, channels-last, micro-batching, MaCo) and memory probing;
2. ``micro_batch="auto"`` at the paper's ensemble of 32 (4 Lite0 targets = 128 samples
   per step at 224 px): the slice it picks and seconds per step;
3. the ``paper`` preset's images per hour for Lite0, piikit against
   ``benchmarks/reference_loop.py`` (``speed.images_per_hour``: a few steps per stage,
   scaled to 400);
4. seconds per class of the ``quick`` and ``clear`` presets, 8 Lite0 classes in one call;
5. a preview sweep over 2 local ranks (torchrun) against one process, if there are 2 GPUs.

Without CUDA it prints why every part is skipped and exits 0 (CI runs it so on its CPU);
with CUDA it exits 1 if any part failed (the table still prints).

    benchmarks/gpu_check.sh [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BUDGET_S = 8 * 60
TEST_FILES = ["tests/test_inversion.py", "tests/test_param.py", "tests/test_param_maco.py", "tests/test_memory.py",
              "tests/test_polish.py"]
Row = tuple[str, str, str]  # what, result, note


def cuda_tests(limit_s: float) -> Row:
    command = [sys.executable, "-m", "pytest", *TEST_FILES, "--device", "cuda", "-m", "not slow", "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        return "pytest --device cuda (loop, params, memory)", "FAILED", f"over {limit_s:.0f} s"
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    return "pytest --device cuda (loop, params, memory)", "ok" if done.returncode == 0 else "FAILED", \
        f"{summary} ({time.perf_counter() - start:.0f} s)"


def auto_micro_batch_at_32() -> Row:
    import piikit
    from piikit.engine.memory import auto_micro_batch

    model = piikit.load_model("efficientnet_lite0", device="cuda")
    chosen = auto_micro_batch(model, 4 * 32, 224, torch.device("cuda"))
    inv = piikit.Inversion(model, [1, 2, 3, 4], "paper", device="cuda", progress=False, steps_per_stage=4,
                           micro_batch="auto")
    inv.run(max_steps=4 * 7)
    torch.cuda.synchronize()
    per_step = inv.elapsed_s / inv.global_step
    return "micro_batch='auto', paper e=32, 4 targets", f"slice {chosen} of 128", f"{per_step * 1e3:.0f} ms/step incl. stage growth"


def paper_images_per_hour(steps: int) -> Row:
    import speed

    args = argparse.Namespace(model="efficientnet_lite0", device="cuda", targets=4, steps=steps, reference_ensemble=32)
    ours, reference = speed.images_per_hour(args)
    return "paper preset images/hour, Lite0: piikit K=4 vs reference loop", f"{ours:.0f} vs {reference:.0f}", \
        f"{ours / reference:.2f}x (from {steps} steps/stage scaled to 400)"


def preset_seconds_per_class(preset: str, device: str = "cuda") -> Row:
    import batched_targets
    import piikit

    model = piikit.load_model("efficientnet_lite0", device=device)
    classes = batched_targets.CLASSES
    # A short run first, so cuDNN's algorithm search and the folded copy are not timed.
    piikit.invert(model, classes, preset, device=device, progress=False, steps_per_stage=2,
                  refine_steps=min(2, piikit.PRESETS[preset].refine_steps))
    start = time.perf_counter()
    result = piikit.invert(model, classes, preset, device=device, progress=False)
    if device == "cuda":
        torch.cuda.synchronize()
    per_class = (time.perf_counter() - start) / len(classes)
    return f"preset {preset!r}, Lite0, {len(classes)} classes in one call", f"{per_class:.2f} s/class", \
        f"{result.steps_done} steps; Lite0's mean target probability {result.final_probs.mean():.2f}"


def two_rank_sweep() -> Row:
    import speed

    what = "preview sweep of 8 classes: 2 torchrun ranks vs 1 process"
    if torch.cuda.device_count() < 2:
        return what, "skipped", f"{torch.cuda.device_count()} GPU here, needs 2"
    args = argparse.Namespace(model="efficientnet_lite0", device="cuda", sweep_classes="0-7")
    alone, spread = speed.sweep_seconds(1, args), speed.sweep_seconds(2, args)
    return what, f"{spread:.1f} s vs {alone:.1f} s", f"{alone / spread:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="steps per stage the images-per-hour run times")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): all GPU checks skipped "
              "(pytest --device cuda, micro_batch='auto' at e=32, paper images/hour, 2-rank sweep).")
        return 0
    sys.path.insert(0, str(HERE))
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {torch.cuda.get_device_name()} x{torch.cuda.device_count()}, torch {torch.__version__}, "
          f"CPU load average {load:.1f}", flush=True)
    # The tests get at most half the budget; the timed parts are short by construction.
    parts: list[tuple[str, Callable[[], Row]]] = [
        ("CUDA tests", lambda: cuda_tests(BUDGET_S / 2)), ("micro_batch auto", auto_micro_batch_at_32),
        ("images/hour", lambda: paper_images_per_hour(args.steps)),
        ("quick s/class", lambda: preset_seconds_per_class("quick")),
        ("clear s/class", lambda: preset_seconds_per_class("clear")), ("2-rank sweep", two_rank_sweep),
    ]
    rows: list[Row] = []
    for name, part in parts:
        try:
            rows.append(part())
        except Exception as error:  # a failed part is a row of the table, not the end of the check
            rows.append((name, "FAILED", f"{type(error).__name__}: {str(error)[:120]}"))
        print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'check':<{width}}  {'result':<16}  note")
    for what, result, note in rows:
        print(f"{what:<{width}}  {result:<16}  {note}")
    print(f"total {time.perf_counter() - started:.0f} s (budget {BUDGET_S} s)")
    return 1 if any(r[1] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
