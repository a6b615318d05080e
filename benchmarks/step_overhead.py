"""Seconds per PII step against the floor: a bare forward + backward of the same wrapped
model at the same batch, measured in one run on this machine.

The PII step adds the jitter roll, the ensemble repeat, ColorShift, the loss, the
history record, one Adam step on the image and the clamp. Target (issue #2): at most 5%
over the floor on the CPU for Lite0, ensemble 8, 224 px.

    python benchmarks/step_overhead.py [--model efficientnet_lite0] [--ensemble 8] [--size 224]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import piikit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--ensemble", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks of each, interleaved")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    model = piikit.load_model(args.model, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # One full-size stage long enough for every timed block: the step is then always at
    # args.size, as the floor is.
    total = (args.repeats + 1) * args.steps
    inv = piikit.Inversion(model, "volcano", "paper", device=device, progress=False, schedule="none", stages=1,
                           steps_per_stage=total, ensemble=args.ensemble, image_size=args.size, seed=0)
    x = torch.rand(args.ensemble, 3, args.size, args.size, device=device, requires_grad=True)

    def floor_block() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            x.grad = None
            model(x).logsumexp(-1).sum().backward()
        sync()
        return (time.perf_counter() - start) / args.steps

    def pii_block() -> float:
        sync()
        start = time.perf_counter()
        inv.run(max_steps=args.steps)
        sync()
        return (time.perf_counter() - start) / args.steps

    floor_block(), pii_block()  # warm-up: allocator, kernels, thread pools
    floors, piis = [], []
    for _ in range(args.repeats):
        floors.append(floor_block())
        piis.append(pii_block())
    floor, pii = statistics.median(floors), statistics.median(piis)
    print(f"model={args.model} ensemble={args.ensemble} size={args.size} device={device} threads={torch.get_num_threads()}")
    print(f"bare forward+backward: {floor * 1000:8.1f} ms/step (median of {args.repeats} x {args.steps})")
    print(f"PII step:              {pii * 1000:8.1f} ms/step")
    print(f"overhead:              {100 * (pii / floor - 1):+8.1f} %")


if __name__ == "__main__":
    main()
