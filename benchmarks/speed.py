"""piikit's speed against its anchors, as one table from one run on this machine.

(a) a PII step against a bare forward + backward of the same model at the same batch
    (step_overhead.py); on CUDA also with amp + channels-last;
(b) images per hour at the ``paper`` settings (7 x 400 steps, ensemble 32): piikit with
    K targets per call and ``micro_batch="auto"`` against the reference loop
    (reference_loop.py, one class per process). Both run a few steps per stage and are
    scaled to 400; the reference keeps its whole fixed cost per class (process start,
    imports, model loading), piikit's one process start per sweep is left out;
(c) K targets per call against K calls (batched_targets.py), and a sweep of a class set
    by N torchrun processes against one process with all the cores.

    python benchmarks/speed.py [--device cpu] [--targets 4] [--ranks 2]

Ratios are what to quote on a CPU; absolute times only on a GPU. A shared machine makes
every figure noisy: note the load average printed in the header.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import batched_targets
import piikit
import step_overhead

HERE = Path(__file__).resolve().parent
STAGES = 7
PAPER_STEPS = 400


def _wall(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, cwd=HERE.parent)
    return time.perf_counter() - start


def images_per_hour(args: argparse.Namespace) -> tuple[float, float]:
    """(piikit, reference) images per hour at the paper settings, from a run of
    ``args.steps`` steps per stage extrapolated to 400."""
    device = piikit.resolve_device(args.device)
    model = piikit.load_model(args.model, device=device)
    classes = batched_targets.CLASSES[: args.targets]
    steps, paper_steps = STAGES * args.steps, STAGES * PAPER_STEPS
    piikit.invert(model, classes, "paper", device=device, progress=False, steps_per_stage=1, micro_batch="auto")
    start = time.perf_counter()
    piikit.invert(model, classes, "paper", device=device, progress=False, steps_per_stage=args.steps,
                  micro_batch="auto")
    if device.type == "cuda":
        torch.cuda.synchronize()
    piikit_s = (time.perf_counter() - start) * paper_steps / steps / len(classes)

    # The reference's fixed cost per class (process start, imports, model loading) is its
    # wall time less the loop time it reports; the loop is scaled to 400 steps per stage.
    reference = [sys.executable, str(HERE / "reference_loop.py"), "--model", args.model, "--class", str(classes[0]),
                 "--device", str(device), "--ensemble", str(args.reference_ensemble),
                 "--steps-per-stage", str(args.steps)]
    start = time.perf_counter()
    report = subprocess.run(reference, check=True, capture_output=True, text=True, cwd=HERE.parent).stdout
    wall = time.perf_counter() - start
    loop_s = float(report.split("loop_s=")[1].split()[0])
    reference_s = wall - loop_s + loop_s * paper_steps / steps
    return 3600 / piikit_s, 3600 / reference_s


def sweep_seconds(ranks: int, args: argparse.Namespace) -> float:
    """Wall seconds for a preview sweep of ``args.sweep_classes`` by ``ranks`` processes."""
    with tempfile.TemporaryDirectory() as out:
        sweep = ["-m", "piikit", "sweep", "--models", args.model, "--classes", args.sweep_classes, "--preset",
                 "preview", "--out", out, "--device", args.device, "--quiet"]
        if ranks == 1:
            threads = str(len(os.sched_getaffinity(0)))
            return _wall([sys.executable, *sweep], env=dict(os.environ, OMP_NUM_THREADS=threads))
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
        return _wall(launcher + sweep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--targets", type=int, default=4, help="K targets per call in (b) and (c)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per stage that (b) runs and scales to 400 (default: 2 on CPU, 20 on GPU)")
    parser.add_argument("--reference-ensemble", type=int, default=32, help="the reference loop's hand-set ensemble")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--sweep-classes", default="0-7")
    args = parser.parse_args()
    on_gpu = torch.device(args.device).type == "cuda"
    args.steps = args.steps or (20 if on_gpu else 2)

    where = torch.cuda.get_device_name() if on_gpu else f"CPU {torch.backends.cpu.get_cpu_capability()}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {where}, {torch.get_num_threads()} threads, torch {torch.__version__}, piikit {piikit.__version__}, "
          f"model {args.model}, load average {load:.1f} at start")
    rows = []

    floor, step = step_overhead.measure(args.model, 8, 224, device=args.device)
    rows.append(("(a) PII step vs bare fwd+bwd, e=8, 224 px", f"{step * 1e3:.1f} ms", f"{floor * 1e3:.1f} ms",
                 step / floor, "cost <= 1.05x"))
    if on_gpu:
        floor, step = step_overhead.measure(args.model, 32, 224, device=args.device, amp=True, channels_last=True)
        rows.append(("(a) same, e=32, amp + channels-last", f"{step * 1e3:.1f} ms", f"{floor * 1e3:.1f} ms",
                     step / floor, "cost <= 1.05x"))

    ours, reference = images_per_hour(args)
    rows.append((f"(b) images/hour, paper settings, piikit K={args.targets} vs reference loop", f"{ours:.1f}",
                 f"{reference:.1f}", ours / reference, "speed-up >= 3x (GPU)"))

    one_by_one, batched = batched_targets.measure(args.model, args.targets, 4, 6, "auto", args.device)
    rows.append((f"(c) {args.targets} targets in one call vs {args.targets} calls (e=4, 7x6 steps, micro_batch auto)",
                 f"{batched:.1f} s", f"{one_by_one:.1f} s", one_by_one / batched, "speed-up > 1x"))

    alone, spread = sweep_seconds(1, args), sweep_seconds(args.ranks, args)
    rows.append((f"(c) sweep of classes {args.sweep_classes} (preview): {args.ranks} torchrun ranks vs 1 process",
                 f"{spread:.1f} s", f"{alone:.1f} s", alone / spread, "speed-up >= 1x"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'piikit':>10}  {'anchor':>10}  {'ratio':>8}  target")
    for name, ours_text, anchor_text, ratio, target in rows:
        print(f"{name:<{width}}  {ours_text:>10}  {anchor_text:>10}  {ratio:>7.2f}x  {target}")


if __name__ == "__main__":
    main()
