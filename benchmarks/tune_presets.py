"""Measure inversion quality and time for candidate configs, to choose the presets.

Quality is measured the way DESIGN.md asks: invert ``--model`` (default Lite0), then score
the images with the *other* offline models (Lite1, Lite2): top-1 / top-5 hit rate and
mean target probability, plus total variation per pixel. Time is wall-clock on this
machine for all classes inverted together in one batch.

    python benchmarks/tune_presets.py --candidate fast --candidate preview
    python benchmarks/tune_presets.py --candidate "steps_per_stage=40,ensemble=4,lr=0.05"
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import piikit
from piikit.analysis.evaluate import summarize

CLASSES = [980, 11, 1, 967, 107, 963, 323, 340]  # volcano goldfinch goldfish espresso jellyfish pizza monarch zebra


def parse_candidate(text: str) -> tuple[str, dict]:
    if text in piikit.PRESETS:
        return text, {}
    base, _, rest = text.partition(":") if ":" in text else ("fast", "", text)
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, value = item.split("=")
        overrides[key.strip()] = json.loads(value)
    return base, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--candidate", action="append", required=True,
                        help="a preset name, or 'PRESET:key=value,...' overrides (JSON values)")
    parser.add_argument("--classes", type=int, nargs="*", default=CLASSES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="directory to save the images of each candidate")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = piikit.load_model(args.model)
    for cand in args.candidate:
        base, overrides = parse_candidate(cand)
        t0 = time.perf_counter()
        result = piikit.invert(model, args.classes, base, seed=args.seed, progress=False, device="cpu", **overrides)
        elapsed = time.perf_counter() - t0
        rows = result.score(device="cpu")
        if args.save:
            result.save(f"{args.save}/{cand.replace(':', '_').replace(',', '_').replace('=', '')}")
        summary = summarize(rows)
        n = len(args.classes)
        print(json.dumps({
            "candidate": cand, "seconds": round(elapsed, 1), "seconds_per_class": round(elapsed / n, 1),
            "self_prob": round(float(result.final_probs.mean()), 3),
            **{ev: {k: round(v, 3) for k, v in s.items()} for ev, s in summary.items()},
        }), flush=True)


if __name__ == "__main__":
    main()
