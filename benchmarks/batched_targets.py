"""Images per minute for K targets optimized together in one batch against K runs of one
target each (the reference code's per-class loop), in one run on this machine.

    python benchmarks/batched_targets.py [--targets 4] [--ensemble 4] [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import torch

import piikit

CLASSES = [980, 11, 1, 967, 107, 963, 323, 340]


def measure(model_name: str = "efficientnet_lite0", targets: int = 4, ensemble: int = 4, steps: int = 6,
            micro_batch: int | str | None = None, device: str | torch.device = "cpu") -> tuple[float, float]:
    """Seconds for ``targets`` classes run one per call, and all in one call."""
    device = torch.device(device)
    model = piikit.load_model(model_name, device=device)
    classes = CLASSES[:targets]
    settings = dict(preset="paper", device=device, progress=False, seed=0, steps_per_stage=steps, ensemble=ensemble)
    piikit.invert(model, classes[0], **dict(settings, steps_per_stage=1))  # warm-up

    start = time.perf_counter()
    for c in classes:
        piikit.invert(model, c, **settings)
    one_by_one = time.perf_counter() - start

    start = time.perf_counter()
    piikit.invert(model, classes, **dict(settings, micro_batch=micro_batch))
    return one_by_one, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--targets", type=int, default=4)
    parser.add_argument("--ensemble", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="steps per stage (7 stages, the paper's schedule)")
    parser.add_argument("--micro-batch", help="samples per forward pass in the batched run (a number or auto)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    micro_batch = int(args.micro_batch) if args.micro_batch and args.micro_batch.isdigit() else args.micro_batch
    one_by_one, batched = measure(args.model, args.targets, args.ensemble, args.steps, micro_batch, args.device)
    k = args.targets
    print(f"model={args.model} targets={k} ensemble={args.ensemble} steps={7 * args.steps} device={args.device} "
          f"threads={torch.get_num_threads()} micro_batch={args.micro_batch}")
    print(f"one target at a time: {one_by_one:7.1f} s  {60 * k / one_by_one:6.2f} images/min")
    print(f"all {k} in one batch:   {batched:7.1f} s  {60 * k / batched:6.2f} images/min")
    print(f"batched speed-up:     {one_by_one / batched:6.2f}x")

if __name__ == "__main__":
    main()
