"""Where `quick`'s fine ripple comes from, and the refine phase's TV weight that takes it out.

To the eye every ``quick`` image carried a fine texture over its flat background: a grey
grain after the stages, turned by the 50-step DeepInversion polish into small pastel blocks
and stripes. This script inverts a few classes with the same stages (same seed, so the
stages' image is the same bit for bit) and ends them three ways: no polish, the polish at
its TV weight 0.01 (``DEEPINVERSION_PRESETS["refine"]``), and at ``--tv`` (0.05). It prints,
per image, the share of the image's variance above 0.25 cycles per pixel (the finest
quarter of frequencies; the grain lives there), TV per pixel and Lite0's own target
probability, and saves the images with their top-left third enlarged, side by side
(``benchmarks/results/ripple.png``).

What it showed (docs/benchmarks.md, "The ripple"): the grain is there after the stages; the
polish at 0.01 sharpens it into blocks; with ``quick``'s stages and 50 polish steps, 0.05 takes it
out and Lite0's target probability stays 0.999 (``ripple.png``). A 20-step polish after 32-step
stages (``--preset "quick 4x32 + polish 20 tv0.05"``, ``ripple_short_polish.png``) does not: where
the stages' image is weak the polish adds colour noise at either weight.

    python benchmarks/ripple.py --classes 404 15 980 --preset quick --tv 0.05
    python benchmarks/ripple.py --classes 404 15 980 --preset "quick 4x32 + polish 20 tv0.05" \
        --out benchmarks/results/ripple_short_polish.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import piikit  # noqa: E402
from pareto import CANDIDATES  # noqa: E402
from piikit.figures import new_figure  # noqa: E402
from piikit.models.scoring import tv_per_pixel  # noqa: E402

HERE = Path(__file__).resolve().parent


def high_frequency_share(images: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Per image, the share of its (mean-removed) variance at radial frequencies above ``cutoff`` cycles/px."""
    x = images - images.mean((-2, -1), keepdim=True)
    power = torch.fft.rfft2(x).abs().pow(2).sum(1)
    fy = torch.fft.fftfreq(x.shape[-2]).abs()[:, None]
    fx = torch.fft.rfftfreq(x.shape[-1])[None]
    high = (fy ** 2 + fx ** 2).sqrt() > cutoff
    return power[:, high].sum(-1) / power.flatten(1).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[404, 15, 980])
    parser.add_argument("--preset", default="quick", help="a preset or one of benchmarks/pareto.py's candidates")
    parser.add_argument("--tv", type=float, default=0.05, help="the refine phase's TV weight to compare with 0.01")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ripple.png")
    args = parser.parse_args()
    model = piikit.load_model("efficientnet_lite0")
    preset, overrides = CANDIDATES.get(args.preset, (args.preset, {}))
    base = piikit.make_config(preset, **overrides)
    endings = {"no polish": base.replace(refine_steps=0), "polish, TV 0.01": base.replace(refine_tv_weight=0.01),
               f"polish, TV {args.tv:g}": base.replace(refine_tv_weight=args.tv)}
    results = {name: piikit.invert(model, args.classes, config, seed=args.seed, device="cpu", progress=False)
               for name, config in endings.items()}
    print(f"{'ending':<18} {'class':>5} {'high-freq share':>15} {'TV':>7} {'p(target)':>9}")
    for name, result in results.items():
        share = high_frequency_share(result.images)
        tv = tv_per_pixel(result.images)
        for i, target in enumerate(args.classes):
            print(f"{name:<18} {target:>5} {float(share[i]):>15.4f} {float(tv[i]):>7.4f} {float(result.final_probs[i]):>9.3f}")
    side = results["no polish"].images.shape[-1]
    crop = slice(0, side // 3)
    fig = new_figure(figsize=(2.1 * len(endings), 2.1 * 2 * len(args.classes)))
    axes = fig.subplots(2 * len(args.classes), len(endings), squeeze=False)
    for col, (name, result) in enumerate(results.items()):
        for i, target in enumerate(args.classes):
            image = result.images[i].clamp(0, 1).permute(1, 2, 0)
            axes[2 * i, col].imshow(image)
            axes[2 * i + 1, col].imshow(image[crop, crop], interpolation="nearest")
            axes[2 * i, col].set_title(f"{name}\n{piikit.labels.label(target).split(',')[0]}", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
