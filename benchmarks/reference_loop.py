"""The paper's reference loop, re-implemented for speed comparisons only.

Written from the description of the algorithm in the project's design brief (not from the
paper authors' code, which has no licence): one class per process run; each step rolls
the image by a random jitter, repeats it to the ensemble, ColorShifts every copy, takes one
Adam step on the cross-entropy and clamps to [0, 1]; the image starts at 2/8 of the size
and grows by 1/8 per stage, pasted into fresh noise. What makes it the *reference* loop
rather than piikit's: one class per process (model loaded every time), the loss read back
to the host every step for logging, ``torch.cuda.empty_cache()`` every step on CUDA, and
an ensemble the user limits by hand to what fits (no micro-batching).

    python benchmarks/reference_loop.py --class 980 [--ensemble 32] [--steps-per-stage 400] [--out x.png]

``benchmarks/speed.py`` runs it as a subprocess and compares its images per hour with
piikit's.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

import piikit


def grow(image: torch.Tensor, size: int, step: int, generator: torch.Generator) -> torch.Tensor:
    """The previous stage's image upsampled to size - step/2, centred on fresh noise."""
    inner = size - step // 2
    canvas = torch.rand(image.shape[0], 3, size, size, device=image.device, generator=generator)
    pasted = F.interpolate(image, size=(inner, inner), mode="bilinear", align_corners=False)
    offset = (size - inner) // 2
    canvas[:, :, offset : offset + inner, offset : offset + inner] = pasted
    return canvas


def invert_one(model: torch.nn.Module, target: int, *, size: int = 224, stages: int = 7, steps: int = 400,
               ensemble: int = 32, lr: float = 0.01, jitter: int = 32, alpha: float = 1.0, beta: float = 1.0,
               seed: int = 0, log_every: int = 1) -> torch.Tensor:
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    step_px = size // 8
    labels = torch.full((ensemble,), target, device=device)
    image = torch.rand(1, 3, 2 * step_px, 2 * step_px, device=device, generator=generator)
    for stage in range(stages):
        if stage:
            image = grow(image.detach(), (2 + stage) * step_px, step_px, generator)
        image = image.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([image], lr=lr, betas=(0.5, 0.99))
        for t in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * t / steps))
            dx, dy = torch.randint(-jitter, jitter + 1, (2,), generator=generator, device=device).tolist()
            x = torch.roll(image, shifts=(dx, dy), dims=(2, 3)).repeat(ensemble, 1, 1, 1)
            mu = (torch.rand(ensemble, 3, 1, 1, device=device, generator=generator) * 2 - 1) * alpha
            sigma = torch.exp((torch.rand(ensemble, 3, 1, 1, device=device, generator=generator) * 2 - 1) * beta)
            loss = F.cross_entropy(model(x * sigma + mu), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                image.clamp_(0, 1)
            if t % log_every == 0:
                _ = loss.item()  # the per-step host sync of the reference's logging
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return image.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--class", dest="target", type=int, default=980)
    parser.add_argument("--ensemble", type=int, default=32, help="set by hand to what fits the device")
    parser.add_argument("--steps-per-stage", type=int, default=400)
    parser.add_argument("--stages", type=int, default=7)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", help="save the image here (PNG)")
    args = parser.parse_args()

    device = piikit.resolve_device(args.device)
    model = piikit.load_model(args.model, device=device).eval()
    started = time.perf_counter()
    image = invert_one(model, args.target, size=args.size, stages=args.stages, steps=args.steps_per_stage,
                       ensemble=args.ensemble)
    loop_s = time.perf_counter() - started
    if args.out:
        from PIL import Image

        pixels = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        Image.fromarray(pixels).save(args.out)
    print(f"class {args.target} on {device}: loop_s={loop_s:.3f} steps={args.stages * args.steps_per_stage}")


if __name__ == "__main__":
    main()
