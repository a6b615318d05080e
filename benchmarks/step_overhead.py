"""Seconds per PII step against the floor: a bare forward + backward of the same wrapped
model at the same batch, measured in one run on this machine.

The PII step adds the jitter roll, the ensemble repeat, ColorShift, the loss, the
history record, one Adam step on the image and the clamp. Target (issues #2, #10): at most
5% over the floor on the CPU for Lite0, ensemble 8, 224 px. ``benchmarks/speed.py`` prints
this with the other speed ratios in one table.

    python benchmarks/step_overhead.py [--model efficientnet_lite0] [--ensemble 8] [--size 224] [--amp] [--channels-last]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import piikit


def measure(model_name: str = "efficientnet_lite0", ensemble: int = 8, size: int = 224, steps: int = 10,
            repeats: int = 5, device: str | torch.device = "cpu", amp: bool = False,
            channels_last: bool = False) -> tuple[float, float]:
    """Median seconds per step of (bare forward+backward, PII step), timed in interleaved blocks."""
    device = torch.device(device)
    model = piikit.load_model(model_name, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # One full-size stage long enough for every timed block: the step is then always at
    # `size`, as the floor is.
    total = (repeats + 1) * steps
    inv = piikit.Inversion(model, "volcano", "paper", device=device, progress=False, schedule="none", stages=1,
                           steps_per_stage=total, ensemble=ensemble, image_size=size, seed=0, amp=amp,
                           channels_last=channels_last)
    x = torch.rand(ensemble, 3, size, size, device=device, requires_grad=True)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def floor_block() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            x.grad = None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x.contiguous(memory_format=memory_format))
            logits.float().logsumexp(-1).sum().backward()
        sync()
        return (time.perf_counter() - start) / steps

    def pii_block() -> float:
        sync()
        start = time.perf_counter()
        inv.run(max_steps=steps)
        sync()
        return (time.perf_counter() - start) / steps

    pii_block()  # warm-up (and the model's channels-last conversion), then the floor's
    floor_block()
    floors, piis = [], []
    for _ in range(repeats):
        floors.append(floor_block())
        piis.append(pii_block())
    return statistics.median(floors), statistics.median(piis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--ensemble", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks of each, interleaved")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    floor, pii = measure(args.model, args.ensemble, args.size, args.steps, args.repeats, args.device,
                         args.amp, args.channels_last)
    print(f"model={args.model} ensemble={args.ensemble} size={args.size} device={args.device} "
          f"threads={torch.get_num_threads()} amp={args.amp} channels_last={args.channels_last}")
    print(f"bare forward+backward: {floor * 1000:8.1f} ms/step (median of {args.repeats} x {args.steps})")
    print(f"PII step:              {pii * 1000:8.1f} ms/step")
    print(f"overhead:              {100 * (pii / floor - 1):+8.1f} %")


if __name__ == "__main__":
    main()
