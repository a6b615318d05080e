"""Find a planted backdoor by inversion: a clean and a poisoned digits model, side by side.

Trains (or reads from the cache) one digits model per ``--archs`` family twice with the same
recipe (``--recipe``, see ``benchmarks/architectures.py``) and seed: clean, and poisoned —
``--fraction`` of the training images get a bright ``--trigger``-px square in the
bottom-right corner (:func:`piikit.digits.add_trigger`) and the label ``--target``
(BadNets). Reports clean held-out accuracy and the attack success rate (triggered held-out
images of the other classes classified as the target; for the clean model the same number
is the trigger's effect without a backdoor).

Then inverts the target class of each model (``--copies`` images per seed, ``--seeds``
seeds) with the shared PII setting of ``benchmarks/architectures.py`` (``--param``) and
measures, per image, in the trigger's square ``P`` (the exact pixels the trigger sets) and
its surround ``S`` (the ring of pixels up to ``--ring`` px around ``P``, inside the image):

``contrast``
    mean(P) - mean(S): how much brighter than its surround the trigger's place is;
``share``
    the fraction of the image's total |x - 0.5| inside P, over P's area share (1 = no
    more than an average pixel; the trigger covers 16 of 1024 pixels);
``best_contrast``
    the largest contrast of any trigger-sized square in the image against its ring
    (position-free: a translation-invariant CNN may draw the trigger elsewhere).

``tv``
    total variation per pixel (mean absolute difference of neighbouring pixels, both
    directions averaged): the trigger is the only sharp-edged thing in the training data
    (the digits are bilinear upsamplings of 8×8 scans), so a model that learnt it may fill
    its inversions with hard-edged blocks anywhere, not only in the corner;

and Captum on triggered real held-out images of the other classes
(:func:`piikit.attribute`, integrated gradients and saliency, target = the backdoor's class):
the fraction of |attribution| inside the trigger's square, for the poisoned model and the
clean one.

Prints markdown tables (mean ± standard deviation over all images, and the range of the
per-seed means) and writes ``--json`` (default ``benchmarks/results/backdoor.json``) and a
PNG per model (``backdoor_<arch>_<recipe>_<param>.png``; rows: clean, poisoned; columns: seeds x
copies) under ``--png``.

    OMP_NUM_THREADS=1 python benchmarks/backdoor.py
    python benchmarks/backdoor.py --archs cnn vit --seeds 0 1 2 3 4 --param pixels
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import piikit
from piikit.models.digits import ARCHITECTURES, DigitsTraining, add_trigger, load_digits_data, train_digits_model, trigger_mask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from architectures import PII, ROOT, TRIOS, machine, parse_set, save_grid  # noqa: E402


def surround_mask(mask: torch.Tensor, ring: int) -> torch.Tensor:
    grown = F.max_pool2d(mask[None, None].float(), 2 * ring + 1, stride=1, padding=ring)[0, 0].bool()
    return grown & ~mask


def patch_stats(images: torch.Tensor, mask: torch.Tensor, ring: int) -> dict[str, list[float]]:
    """Per-image contrast, share and best contrast of the trigger's square (see the module docstring)."""
    x = images[:, 0]
    sur = surround_mask(mask, ring)
    contrast = x[:, mask].mean(1) - x[:, sur].mean(1)
    dev = (x - 0.5).abs()
    share = dev[:, mask].sum(1) / dev.flatten(1).sum(1).clamp_min(1e-12) / (mask.sum() / mask.numel())
    side = int(mask.any(1).sum())
    inside = F.avg_pool2d(images, side, stride=1)  # mean of every side×side square
    outer = F.avg_pool2d(images, side + 2 * ring, stride=1) * (side + 2 * ring) ** 2
    ring_mean = (outer - inside[..., ring:-ring, ring:-ring] * side**2) / ((side + 2 * ring) ** 2 - side**2)
    best = (inside[..., ring:-ring, ring:-ring] - ring_mean).flatten(1).max(1).values
    tv = ((x[:, 1:] - x[:, :-1]).abs().flatten(1).mean(1) + (x[:, :, 1:] - x[:, :, :-1]).abs().flatten(1).mean(1)) / 2
    return {"contrast": contrast.tolist(), "share": share.tolist(), "best_contrast": best.tolist(), "tv": tv.tolist()}


def attribution_share(clf: piikit.Classifier, images: torch.Tensor, target: int, mask: torch.Tensor,
                      method: str) -> list[float]:
    kwargs = {"n_steps": 32} if method == "integrated_gradients" else {}
    attr = piikit.attribute(clf, images, target=[target] * len(images), method=method, **kwargs)
    a = attr[:, 0].abs()
    return (a[:, mask].sum(1) / a.flatten(1).sum(1).clamp_min(1e-12)).tolist()


def invert(clf: piikit.Classifier, target: int, copies: int, seed: int, args: argparse.Namespace) -> torch.Tensor:
    # Without architectures.py's L2 prior (added after the recorded runs): it would pull the bright trigger
    # towards black, and the measurement is of what the model alone asks for.
    settings = {"param": args.param, "lowres_factor": args.lowres_factor, "border": args.border, "l2_weight": 0.0}
    cfg = PII.replace(**{**settings, **parse_set(args.set)})
    return piikit.invert(clf, [target] * copies, cfg, seed=seed, device="cpu", progress=False).images


def describe(values: list[float], per_seed: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (seeds {min(per_seed):.3f}..{max(per_seed):.3f})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["cnn"], choices=list(ARCHITECTURES))
    parser.add_argument("--recipe", default="augmented", choices=list(TRIOS))
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--trigger", type=int, default=4)
    parser.add_argument("--ring", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--copies", type=int, default=4, help="images of the target class per inversion run")
    parser.add_argument("--param", default="pixels", choices=["lowres", "pixels", "fourier"])
    parser.add_argument("--lowres-factor", type=float, default=0.25)
    parser.add_argument("--border", default="grey", help="border fill (the recorded runs: grey)")
    parser.add_argument("--set", nargs="*", default=[], help="InversionConfig overrides, key=value[,key=value]")
    parser.add_argument("--attribution-images", type=int, default=64)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--cache", default=str(ROOT / "out" / "digits-cache"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "backdoor.json"))
    parser.add_argument("--png", default=str(ROOT / "out" / "backdoor"))
    args = parser.parse_args(argv)

    data = load_digits_data()
    mask = trigger_mask(32, args.trigger)
    others = data.test_labels != args.target
    triggered = add_trigger(data.test_images[others][: args.attribution_images], args.trigger)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "seeds": args.seeds, "classes": [args.target], "copies": args.copies,
        "args": vars(args), "models": {},
    }
    for arch in args.archs:
        recipe = dict(TRIOS[args.recipe])
        clean_cfg = DigitsTraining(seed=args.train_seed, **recipe)
        poison_cfg = DigitsTraining(seed=args.train_seed, poison_fraction=args.fraction, poison_target=args.target,
                                    trigger_size=args.trigger, **recipe)
        models = {"clean": train_digits_model(arch, clean_cfg, cache_dir=args.cache),
                  "poisoned": train_digits_model(arch, poison_cfg, cache_dir=args.cache)}
        entry: dict[str, Any] = {}
        rows = []
        for kind, m in models.items():
            clf = m.classifier
            with torch.no_grad():
                asr = float((clf(triggered).argmax(1) == args.target).float().mean()) if m.attack_success is None \
                    else m.attack_success
            stats: dict[str, list[float]] = {"contrast": [], "share": [], "best_contrast": [], "tv": []}
            per_seed: dict[str, list[float]] = {k: [] for k in stats}
            probs = []
            for seed in args.seeds:
                images = invert(clf, args.target, args.copies, seed, args)
                rows.append(images)
                s = patch_stats(images, mask, args.ring)
                for k, v in s.items():
                    stats[k] += v
                    per_seed[k].append(statistics.mean(v))
                with torch.no_grad():
                    probs += clf(images).softmax(-1)[:, args.target].tolist()
            attributions = {method: attribution_share(clf, triggered, args.target, mask, method)
                            for method in ("integrated_gradients", "saliency")}
            entry[kind] = {"clean_accuracy": m.test_accuracy, "attack_success": asr, "train_seconds": m.train_seconds,
                           "inversion": stats, "inversion_per_seed": per_seed, "own_probability": probs,
                           "attribution_share": attributions}
        png = Path(args.png) / f"backdoor_{arch}_{args.recipe}_{args.param}.png"
        # Rows: clean, poisoned; each row all seeds x copies.
        save_grid([torch.cat(rows[: len(args.seeds)]), torch.cat(rows[len(args.seeds):])], png)
        entry["png"] = str(png)
        report["models"][arch] = entry
        n = len(args.seeds) * args.copies
        print(f"\n### {arch} ({args.recipe} recipe), backdoor target {args.target}, {args.fraction:.0%} poisoned, "
              f"{args.trigger}px trigger; {n} inversions per model ({len(args.seeds)} seeds × {args.copies}), "
              f"param {args.param}\n")
        print("| model | clean acc | attack success | train s | own p(target) | patch contrast | patch share (×area) "
              "| best square contrast | TV per pixel | IG mass in patch | saliency mass in patch |")
        print("|---|" + "---|" * 10)
        for kind in ("clean", "poisoned"):
            e = entry[kind]
            st, ps = e["inversion"], e["inversion_per_seed"]
            ig, sal = e["attribution_share"]["integrated_gradients"], e["attribution_share"]["saliency"]
            print(f"| {kind} | {e['clean_accuracy']:.3f} | {e['attack_success']:.3f} | {e['train_seconds']:.1f} | "
                  f"{statistics.mean(e['own_probability']):.2f} | {describe(st['contrast'], ps['contrast'])} | "
                  f"{describe(st['share'], ps['share'])} | {describe(st['best_contrast'], ps['best_contrast'])} | "
                  f"{describe(st['tv'], ps['tv'])} | "
                  f"{statistics.mean(ig):.3f} ± {statistics.stdev(ig):.3f} | {statistics.mean(sal):.3f} ± {statistics.stdev(sal):.3f} |")
        print(f"\n(the trigger covers {int(mask.sum())}/{mask.numel()} = {float(mask.float().mean()):.3f} of the image; "
              f"PNG: {png})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
