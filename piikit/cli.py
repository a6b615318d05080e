"""The ``piikit`` command: invert classes, score inversions, list classes and models.

    piikit invert --model efficientnet_lite0 --class volcano --class goldfinch --preset fast --out out/
    piikit score out/ --evaluator efficientnet_lite2
    piikit classes --search terrier
    piikit models

Bad input exits with status 2 and a one-line reason; Ctrl-C saves what was done and exits 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip().replace("-", "_")] = value
    for key in ("ensemble", "steps_per_stage", "stages", "image_size", "micro_batch", "lr", "schedule", "jitter"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return overrides


def _cmd_invert(args: argparse.Namespace) -> int:
    from pathlib import Path

    import piikit

    classes = list(args.classes or [])
    if args.classes_file:
        classes += [line.strip() for line in Path(args.classes_file).read_text().splitlines() if line.strip()]
    if not classes:
        raise ValueError("give at least one --class (a name or an index)")
    model = piikit.load_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                              trust_pickle=args.trust_pickle)
    targets = piikit.labels.resolve_classes(classes, model.class_names)  # fail on a bad name before any work
    config = piikit.make_config(args.preset, **_config_overrides(args))
    out = Path(args.out)
    batches = [targets[i : i + args.batch] for i in range(0, len(targets), args.batch)]
    status = 0
    for j, batch in enumerate(batches):
        try:
            result = piikit.invert(model, batch, config, seed=args.seed, device=args.device, progress=not args.quiet)
        except piikit.InversionFailed as failure:
            result, status = failure.partial, 1
            print(f"piikit: {failure}", file=sys.stderr)
        if args.score:
            # The result knows the inverted model, so it is left out of the default evaluators.
            result.score(device=args.device)
        prefix = f"batch{j:03d}_" if len(batches) > 1 else ""
        paths = result.save(out, snapshots=args.snapshots, prefix=prefix)
        for path, lab, p in zip(paths, result.labels, result.final_probs.tolist() if result.final_probs is not None else []):
            print(f"{path}  {lab}  p={p:.3f}")
        if result.scores:
            from piikit.evaluate import summarize

            for name, s in summarize(result.scores).items():
                print(f"  scored by {name}: top1={s['top1']:.2f} top5={s['top5']:.2f} prob={s['prob']:.3f}")
        if result.stop_reason == "interrupted":
            print(f"piikit: interrupted; saved the partial result to {out}", file=sys.stderr)
            return 130
    return status


def _load_png(path: Any) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _cmd_score(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from piikit.evaluate import default_evaluators, format_scores, score, summarize

    directory = Path(args.directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no directory {str(directory)!r}")
    metas = sorted(directory.glob("*result.json"))
    if not metas:
        raise FileNotFoundError(
            f"no result.json in {str(directory)!r}; `piikit invert --out DIR` (InversionResult.save) writes one"
        )
    all_rows = []
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        files, targets = meta.get("files") or [], [t["index"] for t in meta.get("targets", [])]
        if not files or len(files) != len(targets):
            raise ValueError(f"{meta_path} lists {len(files)} image file(s) for {len(targets)} target(s)")
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{meta_path} names images that are not in {str(directory)!r}: {', '.join(missing)}")
        images = torch.stack([_load_png(directory / f) for f in files])
        evaluators = args.evaluators or default_evaluators(meta.get("model"))
        rows = score(images, targets, evaluators, device=args.device, batch_size=args.batch_size,
                     resize=args.resize)
        for row in rows:
            row["file"] = files[row["image"]]
        all_rows += rows
        if not args.no_save:
            # Replace earlier rows of the same evaluators; keep the others.
            scored_by = {r["evaluator"] for r in rows}
            kept = [r for r in meta.get("scores") or [] if r.get("evaluator") not in scored_by]
            meta["scores"] = kept + rows
            meta_path.write_text(json.dumps(meta, indent=2))
    if args.json:
        print(json.dumps({"rows": all_rows, "summary": summarize(all_rows)}, indent=2))
    else:
        print(format_scores(all_rows))
    return 0


def _cmd_classes(args: argparse.Namespace) -> int:
    from piikit.labels import imagenet_classes, search_classes

    rows = search_classes(args.search, limit=args.limit) if args.search else list(enumerate(imagenet_classes()))
    if args.search and not rows:
        raise ValueError(f"no class matches {args.search!r}")
    for i, name in rows:
        print(f"{i:4d}  {name}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from piikit.models import available_models

    found = available_models(args.pattern)
    print("offline, real ImageNet-1k weights:")
    for name in found["offline"]:
        print(f"  {name}")
    if args.all:
        print("timm architectures (pretrained weights need the hub; --no-pretrained for random):")
        print("  " + "\n  ".join(found["timm"]))
        print("torchvision architectures (use torchvision:NAME):")
        print("  " + "\n  ".join(found["torchvision"]))
    else:
        print(f"plus {len(found['timm'])} timm and {len(found['torchvision'])} torchvision architectures "
              "matching the pattern (--all lists them; their pretrained weights need a hub)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piikit", description="Plug-In Inversion of image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)

    inv = sub.add_parser("invert", help="synthesize one image per class and save PNGs + result.json")
    inv.add_argument("--model", default="efficientnet_lite0", help="name, timm:NAME, torchvision:NAME or file")
    inv.add_argument("--class", dest="classes", action="append", metavar="CLASS", help="name or index; repeatable")
    inv.add_argument("--classes-file", help="a file with one class per line")
    inv.add_argument("--preset", default="fast", choices=["paper", "fast", "preview"])
    inv.add_argument("--out", default="out")
    inv.add_argument("--seed", type=int, default=0)
    inv.add_argument("--device", default="auto")
    inv.add_argument("--batch", type=int, default=8, help="classes optimized together per batch")
    inv.add_argument("--ensemble", type=int)
    inv.add_argument("--steps-per-stage", dest="steps_per_stage", type=int)
    inv.add_argument("--stages", type=int)
    inv.add_argument("--image-size", dest="image_size", type=int)
    inv.add_argument("--micro-batch", dest="micro_batch", type=int)
    inv.add_argument("--lr", type=float)
    inv.add_argument("--jitter", type=int)
    inv.add_argument("--schedule", choices=["zoom+center", "zoom", "center", "none"])
    inv.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config field, e.g. --set amp=true")
    inv.add_argument("--checkpoint", help="a state dict for --model's architecture")
    inv.add_argument("--no-pretrained", dest="pretrained", action="store_false")
    inv.add_argument("--trust-pickle", action="store_true", help="allow a pickled model file (runs its code)")
    inv.add_argument("--snapshots", action="store_true", help="also save each class's stages")
    inv.add_argument("--score", action="store_true", help="score the images with other offline models")
    inv.add_argument("--quiet", action="store_true", help="no progress bar")
    inv.set_defaults(run=_cmd_invert)

    sco = sub.add_parser("score", help="score saved inversions with other models (top-1/top-5, target prob, TV)",
                         description="Score the PNGs a `piikit invert --out DIR` run saved, against their targets, "
                         "with evaluator models; the rows are added to DIR/result.json.")
    sco.add_argument("directory", help="a directory holding result.json and its PNGs")
    sco.add_argument("--evaluator", dest="evaluators", action="append", metavar="MODEL",
                     help="an evaluator model name; repeatable (default: the offline models other than the inverted one)")
    sco.add_argument("--device", default="auto")
    sco.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    sco.add_argument("--no-resize", dest="resize", action="store_false",
                     help="feed the images at their own size to evaluators that accept any size "
                     "(default: resize to each evaluator's input size)")
    sco.add_argument("--json", action="store_true", help="print the rows and summary as JSON")
    sco.add_argument("--no-save", dest="no_save", action="store_true", help="do not write the scores into result.json")
    sco.set_defaults(run=_cmd_score)

    cls = sub.add_parser("classes", help="list or search the ImageNet class names")
    cls.add_argument("--search", help="a word; close spellings are found too")
    cls.add_argument("--limit", type=int, default=20)
    cls.set_defaults(run=_cmd_classes)

    mod = sub.add_parser("models", help="list the models piikit can load")
    mod.add_argument("--pattern", default="*")
    mod.add_argument("--all", action="store_true")
    mod.set_defaults(run=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from piikit.errors import PiikitError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (PiikitError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"piikit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
