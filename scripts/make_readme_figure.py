"""Make the README's picture: inversions of the offline Lite0 with the paper's pixel
optimization (`fast` preset) and with the `clear` preset (Fourier image, grey border, small
zoom and rotation), then the `clear` images refined by DeepInversion (:func:`piikit.refine`'s
default for a PII start), titled with the class and the probability that *another* model (Lite2)
gives the target.

    python scripts/make_readme_figure.py   # writes docs/readme_inversions.png
"""

from __future__ import annotations

from pathlib import Path

import piikit
from piikit.figures import image_grid

CLASSES = ["volcano", "goldfinch", "espresso", "jellyfish"]
PRESETS = ["fast", "clear"]
OUT = Path(__file__).resolve().parents[1] / "docs" / "readme_inversions.png"


def main() -> None:
    images, titles = [], []
    model = piikit.load_model("efficientnet_lite0")
    results = {preset: piikit.invert(model, CLASSES, preset, seed=0, device="cpu") for preset in PRESETS}
    results["clear → refine"] = piikit.refine(model, init=results["clear"], device="cpu")
    for name, result in results.items():
        rows = result.score(["efficientnet_lite2"], device="cpu")
        images += list(result.images)
        titles += [f"{name}: {lab}\nLite2 p={r['prob']:.2f} (rank {r['rank']})" for lab, r in zip(result.labels, rows)]
    fig = image_grid(images, titles, ncols=len(CLASSES), size=2.6)
    fig.suptitle("EfficientNet-Lite0 inverted on a 2-core CPU: preset 'fast' (top, pixels as the paper), "
                 "'clear' (middle) and 'clear' refined by DeepInversion (bottom); scored by Lite2", fontsize=9)
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
