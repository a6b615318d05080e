"""The GPU check: everything only a CUDA machine can show, in one go, within a time budget
(default 460 s of the 8 minutes a check may take), written as one table to
``benchmarks/results/gpu_check_<gpu>.txt``. A GPU session runs exactly::

    PYTHONPATH=$PWD/.gpu_site PYTHON=python3 benchmarks/gpu_check.sh; cp -r benchmarks/results/gpu_check_* "$OUT"/

(``.gpu_site``: the three offline weight packages copied beside the repository and carried to the
device machine; docs/benchmarks.md, "The GPU check", has the steps.) Then commit
``benchmarks/results/gpu_check_<gpu>.txt`` and ``gpu_check_sweep_<gpu>/``.

What it measures, in order (each part has its own time guard; a part that would not fit in
what is left is a "skipped" row with the reason, not an overrun):

1. ``pytest --device cuda`` on the step loop, memory probing and the GPU paths (<= 90 s);
2. the floor: samples per second of a bare Lite0 forward + input-gradient at 224 px, at the
   best batch of a search (fp32, then bf16 + channels-last);
3. the ``paper`` preset (``micro_batch="auto"``) at 1 and at 32 targets per call: ms per
   step at each stage size, piikit's samples per second at 224 px and its ratio to the floor,
   and images per hour at the paper's 7 x 400 steps (timed steps per stage, scaled to 400);
4. ``quick``'s seconds per class at its best batch (targets per call searched);
5. levers on ``quick`` with 16 classes: bf16 + channels-last and ``torch.compile`` against
   neither, seconds per class and quality (Lite1/Lite2 top-1 and TV on the 16 classes);
6. a slice of ``piikit sweep --classes 0-999 --preset paper --batch auto`` sized to the time
   left, its seconds per class, the projected hour for all 1,000 classes and its contact
   sheet downscaled into ``benchmarks/results/gpu_check_sweep_<gpu>/``.

``--tiny`` runs every part on any device at a toy size (64 px, a step or two, 2 classes):
the CPU dry run the tests use; it measures nothing worth reading. Without CUDA and without
``--tiny`` it prints the plan and exits 0. With CUDA it exits 1 if any part failed (the
table is still written). The numbers go to ``docs/benchmarks.md``.

    benchmarks/gpu_check.sh [--budget 460] [--tiny] [--device cpu] [--results DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEST_FILES = ["tests/test_gpu_paths.py", "tests/test_inversion.py", "tests/test_memory.py"]
Row = tuple[str, str, str]  # what, result, note


@dataclass
class Scale:
    """The sizes one mode runs at: a GPU's, or --tiny's toy ones."""

    size: int = 224
    floor_batches: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    timed_steps: int = 6  # steps per stage timed (after a warm-up run)
    paper_targets: tuple[int, ...] = (1, 32)
    quick_targets: tuple[int, ...] = (16, 64, 256)
    lever_classes: int = 16
    sweep_max: int = 1000  # classes the sweep slice may take
    sweep_min: int = 0  # ... and takes whatever the time (tiny: the dry run goes through the sweep too)
    overrides: dict[str, Any] = field(default_factory=dict)  # for every run (tiny: fewer steps)
    sweep_overrides: tuple[str, ...] = ()  # for the sweep's command line


TINY = Scale(size=64, floor_batches=(1, 2), timed_steps=1, paper_targets=(1, 2), quick_targets=(2,),
             lever_classes=2, sweep_max=2, sweep_min=2, overrides=dict(image_size=64, stages=2, steps_per_stage=2, refine_steps=1, ensemble=2),
             sweep_overrides=("--image-size", "64", "--stages", "2", "--steps-per-stage", "1", "--ensemble", "2"))


def plan(scale: Scale, device: str, budget: float) -> str:
    return "\n".join([
        f"gpu_check plan on {device}, budget {budget:.0f} s, {scale.size} px:",
        "  1. pytest --device cuda on the step loop, memory probing and GPU paths (CUDA only, <= 90 s)",
        f"  2. floor: bare Lite0 forward + input-gradient, samples/s at batches {list(scale.floor_batches)} "
        "(fp32; bf16 + channels-last), best of each",
        f"  3. paper preset, micro_batch auto, K = {' and '.join(map(str, scale.paper_targets))} targets: ms/step per "
        "stage size, samples/s at full size and ratio to the floor, images/hour at 7 x 400 steps",
        f"  4. quick: s/class at K = {list(scale.quick_targets)} targets per call, the best",
        f"  5. levers on quick, {scale.lever_classes} classes: none / bf16 + channels-last / torch.compile: "
        "s/class, Lite1/Lite2 top-1, TV",
        "  6. sweep --classes 0-999 --preset paper --batch auto: the slice the time left allows, s/class, projected "
        "hour for 1,000, contact sheet downscaled",
    ])


class Clock:
    """The budget: what is left, and whether a part that needs ``need`` seconds still fits."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- the parts
def cuda_tests(limit_s: float) -> Row:
    command = [sys.executable, "-m", "pytest", *TEST_FILES, "--device", "cuda", "-m", "not slow", "-q",
               "-p", "no:cacheprovider"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        return "pytest --device cuda (loop, memory, GPU paths)", "FAILED", f"over {limit_s:.0f} s"
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    return "pytest --device cuda (loop, memory, GPU paths)", "ok" if done.returncode == 0 else "FAILED", \
        f"{summary} ({time.perf_counter() - start:.0f} s)"


def floor(model: torch.nn.Module, scale: Scale, device: torch.device, clock: Clock, fast: bool) -> tuple[float, int]:
    """Samples/s of a bare forward + input-gradient at the best batch of the search, and that batch."""
    best, best_batch = 0.0, 0
    if fast:
        model.to(memory_format=torch.channels_last)
    for batch in scale.floor_batches:
        if clock.left() < 10:
            break
        x = torch.rand(batch, 3, scale.size, scale.size, device=device)
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)

        def one() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                logits = model(x)
            (g,) = torch.autograd.grad(logits.float().logsumexp(-1).sum(), x)

        try:
            one(), one()  # warm-up: cuDNN's algorithm search
            reps = 5 if device.type == "cuda" else 1
            seconds = timed(lambda: [one() for _ in range(reps)], device) / reps
        except torch.OutOfMemoryError:
            break
        finally:
            del x
        if batch / seconds > best:
            best, best_batch = batch / seconds, batch
    model.to(memory_format=torch.contiguous_format)
    return best, best_batch


def paper_rate(model: Any, k: int, scale: Scale, device: torch.device) -> tuple[list[float], int]:
    """Seconds per step at each stage size of the paper preset with ``k`` targets, and the
    micro-batch it ran with (after a warm-up run of the same shapes)."""
    import piikit

    targets = list(range(k))
    steps = scale.timed_steps
    piikit.Inversion(model, targets, "paper", device=device, progress=False,
                     **{**scale.overrides, "steps_per_stage": 1, "refine_steps": 0}).run()
    inv = piikit.Inversion(model, targets, "paper", device=device, progress=False,
                           **{**scale.overrides, "steps_per_stage": steps, "refine_steps": 0})
    per_step = []
    for _ in range(inv.schedule.stages):
        per_step.append(timed(lambda: inv.run(max_steps=steps), device) / steps)
    return per_step, inv._micro_batch or k * inv.loop.ensemble


def quick_seconds(model: Any, k: int, scale: Scale, device: torch.device, **options: Any) -> tuple[float, Any]:
    """Wall seconds per class of a full ``quick`` run of ``k`` classes (after a short warm-up run), and the result."""
    import piikit

    classes = [(37 * i) % 1000 for i in range(k)]
    short = {**scale.overrides, **options, "steps_per_stage": 1, "refine_steps": 1}
    piikit.invert(model, classes, "quick", device=device, progress=False, **short)
    result = None

    def run() -> None:
        nonlocal result
        result = piikit.invert(model, classes, "quick", device=device, progress=False, **{**scale.overrides, **options})

    return timed(run, device) / k, result


def quality(images: torch.Tensor, targets: list[int], device: torch.device) -> str:
    import piikit
    from piikit.analysis.evaluate import summarize

    evaluators = []
    for name in ("efficientnet_lite1", "efficientnet_lite2"):
        try:
            evaluators.append(piikit.load_model(name, device=device))
        except Exception as error:  # a machine with only Lite0's package: score with what there is
            print(f"  ({name} not available: {str(error)[:80]})", flush=True)
    if not evaluators:
        return "no evaluator installed (Lite1/Lite2)"
    s = summarize(piikit.score(evaluators, images, targets, device=device))
    top1 = " / ".join(f"{name} {s[name]['top1']:.2f}" for name in s)
    return f"top-1 {top1}, TV {next(iter(s.values()))['tv']:.3f}"


def slice_size(call_s: dict[int, float], room: float, most: int) -> int:
    """The most classes (up to ``most``) a paper sweep with ``--batch auto`` finishes in ``room``
    seconds, from the seconds one call took at the K measured (linear in K between them; a
    slice beyond the largest K is whole calls of it)."""
    if not call_s:
        return 0
    (k1, t1), (k2, t2) = min(call_s.items()), max(call_s.items())
    if t2 <= room:
        return min(most, k2 * int(room // t2))
    slope = (t2 - t1) / (k2 - k1) if k2 > k1 else math.inf
    return min(most, k1 + int((room - t1) // slope)) if t1 <= room else 0


def sweep_slice(call_s: dict[int, float], scale: Scale, device: torch.device, clock: Clock, results: Path,
                tag: str) -> Row:
    """As many classes of the 1,000-class paper sweep as fit in the time left."""
    what = "sweep --classes 0-999 --preset paper --batch auto"
    room = (clock.left() - 30) * 0.85  # the command's start-up, model loading and the contact sheet
    n = max(scale.sweep_min, slice_size(call_s, room, scale.sweep_max))
    if n < 1:
        return what, "skipped", f"{clock.left():.0f} s left; one call of K={min(call_s, default=0)} " \
            f"takes {min(call_s.values(), default=math.nan):.0f} s"
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"piikit_gpu_sweep_{tag}"
    shutil.rmtree(scratch, ignore_errors=True)
    command = [sys.executable, "-m", "piikit", "sweep", "--models", "efficientnet_lite0", "--classes", f"0-{n - 1}",
               "--preset", "paper", "--batch", "auto", "--out", str(scratch), "--device", str(device), "--quiet",
               *scale.sweep_overrides]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=max(room, 5))
    except subprocess.TimeoutExpired:
        return what, "FAILED", f"{n} classes did not finish in {room:.0f} s"
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return what, "FAILED", (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
    keep = results / f"gpu_check_sweep_{tag}"
    keep.mkdir(parents=True, exist_ok=True)
    sheet = scratch / "efficientnet_lite0" / "contact_sheet.png"
    if sheet.is_file():
        from PIL import Image

        with Image.open(sheet) as image:
            factor = max(1, image.width // 1200)
            image.resize((image.width // factor, image.height // factor)).save(keep / "contact_sheet.png")
    for name in ("settings.json", "manifest.jsonl"):
        if (scratch / name).is_file():
            shutil.copy(scratch / name, keep / name)
    per_class = wall / n
    return what, f"{n} classes in {wall:.0f} s", \
        f"{per_class:.2f} s/class incl. start-up; projected {1000 * per_class / 3600:.2f} h for 1,000 (sheet in {keep.name}/)"


# ----------------------------------------------------------------------------- driving
def run_parts(scale: Scale, device: torch.device, clock: Clock, results: Path, tag: str) -> list[Row]:
    import piikit
    from piikit.engine.memory import target_batch
    from piikit.models import frozen

    rows: list[Row] = []

    def part(name: str, need: float, fn: Callable[[], list[Row] | Row]) -> None:
        if clock.left() < need:
            rows.append((name, "skipped", f"needs ~{need:.0f} s, {clock.left():.0f} s left"))
        else:
            try:
                out = fn()
                rows.extend(out if isinstance(out, list) else [out])
            except Exception as error:  # a failed part is a row of the table, not the end of the check
                rows.append((name, "FAILED", f"{type(error).__name__}: {str(error)[:140]}"))
        print(f"  {rows[-1][0]}: {rows[-1][1]}  {rows[-1][2]}", flush=True)

    if device.type == "cuda":
        part("CUDA tests", 120, lambda: cuda_tests(min(90.0, clock.left() - 300)))
    model = piikit.load_model("efficientnet_lite0", device=device)
    measured: dict[str, Any] = {}
    calls: dict[int, float] = {}  # targets per call -> seconds of one paper call (7 x 400 steps)

    def floors() -> list[Row]:
        out = []
        with frozen(model):
            for fast, label in ((False, "fp32"), (True, "bf16 + channels-last")):
                rate, batch = floor(model, scale, device, clock, fast)
                measured[label] = rate
                out.append((f"floor: Lite0 forward + input-gradient, {label}", f"{rate:.0f} samples/s",
                            f"best batch {batch} of {list(scale.floor_batches)} at {scale.size} px"))
        return out

    part("floor", 20, floors)

    def paper() -> list[Row]:
        out = []
        for k in scale.paper_targets:
            per_step, chunk = paper_rate(model, k, scale, device)
            e = piikit.PRESETS["paper"].ensemble if "ensemble" not in scale.overrides else scale.overrides["ensemble"]
            steps = piikit.PRESETS["paper"].steps_per_stage
            per_image_s = steps * sum(per_step) * 7 / len(per_step) / k  # the paper's 7 stages x 400 steps
            sps = k * e / per_step[-1]
            measured[f"paper{k}"] = 1 / per_image_s
            calls[k] = per_image_s * k
            ratio = sps / measured["fp32"] if measured.get("fp32") else float("nan")
            out.append((f"paper preset, K={k} (e={e}, passes of {chunk})", f"{3600 / per_image_s:.0f} images/h",
                        f"{sps:.0f} samples/s at full size = {ratio:.2f} of the fp32 floor; ms/step by stage "
                        + " ".join(f"{1e3 * t:.0f}" for t in per_step)))
        return out

    part("paper preset", 30, paper)

    def quick() -> list[Row]:
        best = (math.inf, 0)
        notes = []
        for k in scale.quick_targets:
            if clock.left() < 40:
                notes.append(f"K={k} skipped (time)")
                break
            seconds, _ = quick_seconds(model, k, scale, device)
            notes.append(f"K={k}: {seconds:.2f}")
            best = min(best, (seconds, k))
        return [("quick preset, s/class at its best batch", f"{best[0]:.2f} s/class at K={best[1]}", "; ".join(notes))]

    part("quick", 40, quick)

    def levers() -> list[Row]:
        out = []
        k = scale.lever_classes
        for label, options, need in (("none", {}, 30), ("bf16 + channels-last", dict(amp=True, channels_last=True), 30),
                                     ("torch.compile", dict(compile_model=True), 150)):
            if options.get("compile_model") and device.type != "cuda":
                out.append((f"quick, {k} classes: {label}", "skipped", "CUDA only (minutes of compiling on a CPU)"))
                continue
            if clock.left() < need + 60:
                out.append((f"quick, {k} classes: {label}", "skipped", f"{clock.left():.0f} s left"))
                continue
            seconds, result = quick_seconds(model, k, scale, device, **options)
            out.append((f"quick, {k} classes: {label}", f"{seconds:.2f} s/class",
                        quality(result.images, result.targets, device)))
        return out

    part("levers", 90, levers)
    rate = measured.get(f"paper{max(scale.paper_targets)}", 0.0)
    if rate:
        k = target_batch(piikit.PRESETS["paper"].ensemble, 1000)
        rows.append(("paper, 1,000 classes at the K-batched rate", f"{1000 / rate / 3600:.2f} h projected",
                     f"sweep --batch auto takes K={k} on a GPU"))
    part("sweep", 45, lambda: sweep_slice(calls, scale, device, clock, results, tag))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=460.0, help="seconds for the whole check")
    parser.add_argument("--tiny", action="store_true", help="toy sizes on any device (the CPU dry run)")
    parser.add_argument("--device", default=None, help="default: cuda if there is one, else cpu")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the table goes")
    args = parser.parse_args(argv)
    has_cuda = torch.cuda.is_available()
    device = torch.device(args.device or ("cuda" if has_cuda else "cpu"))
    scale = TINY if args.tiny else Scale()
    print(plan(scale, str(device), args.budget), flush=True)
    if device.type != "cuda" and not args.tiny:
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing measured, all GPU "
              "checks skipped; --tiny runs them at toy sizes on this device.")
        return 0
    clock = Clock(args.budget)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    tag = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ("_tiny" if args.tiny else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"# gpu_check on {name}, torch {torch.__version__}, CPU load average {load:.1f}, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}{' (--tiny: toy sizes, not measurements)' if args.tiny else ''}")
    print(header, flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    rows = run_parts(scale, device, clock, args.results, tag)
    width = max(len(r[0]) for r in rows)
    table = [header, "", f"{'check':<{width}}  {'result':<26}  note"]
    table += [f"{what:<{width}}  {result:<26}  {note}" for what, result, note in rows]
    table.append(f"total {clock.budget - clock.left():.0f} s (budget {clock.budget:.0f} s)")
    text = "\n".join(table) + "\n"
    path = args.results / f"gpu_check_{tag}.txt"
    path.write_text(text)
    print("\n" + text + f"written to {path}", flush=True)
    return 1 if any(r[1] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
