"""PII's parts, each switched off (or changed) on the readable base, over many classes.

The base is the ``clear`` preset (PII's stages, jitter, ColorShift and ensemble on a 1/f
Fourier image in decorrelated colour with grey borders, small random zoom and rotation),
at a CPU budget: ``--size`` px (default 128) and ``--steps`` per stage (default 24); the
jitter is scaled with the image (32 px at 224). Each *condition* changes one thing:

    base            the readable base itself
    no_jitter       jitter = 0
    no_colorshift   ColorShift off
    no_zoom_center  schedule "none": the full-size image from the first step (no stages)
    ensemble_1      an ensemble of 1 ColorShifted copy (the base has 4)
    pixels          the paper's pixel parameterization (the ``fast`` preset at the same
                    size and steps): the fidelity row
    ensemble_8      an ensemble of 8 (last: it costs twice the base)

For every condition Lite0 (``--model``) is inverted on ``--classes`` (default: 8 classes
that transfer well) x ``--seeds`` (default 0 1), one batch of 8 classes per call, and the
images are scored by the other offline models (Lite1, Lite2: top-1, top-5, target
probability) and by TV per pixel (:func:`piikit.analysis.evaluate.tv_per_pixel`). Each
metric is reported as the mean over seeds and the seeds' spread (max - min), using
``benchmarks/quality.py``'s helpers.

Writes ``--out`` (default ``benchmarks/results/ablations.json``) after every condition, so a
run cut short keeps what finished: the command, date, machine (CPU capability, cores,
threads, load average), the settings, and per condition its config, summary and per-image
rows. ``--table`` prints the file as a table and exits; ``--merge`` adds the conditions of
other results files (the same classes, seeds and budget run in parallel processes) to it.

    OMP_NUM_THREADS=1 python benchmarks/ablations.py                 # about an hour on a shared 2-core CPU
    python benchmarks/ablations.py --conditions base no_jitter --seeds 0
    python benchmarks/ablations.py --conditions no_zoom_center --out part.json   # in parallel, then
    python benchmarks/ablations.py --merge part.json
    python benchmarks/ablations.py --table
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import piikit  # noqa: E402
from piikit.analysis.evaluate import default_evaluators, summarize  # noqa: E402
from piikit.interfaces.tables import ablation_table  # noqa: E402
from quality import in_batches, summarize_seeds  # noqa: E402

#: Classes that transfer well between the Lite models (volcano, espresso, jellyfish, school
#: bus, daisy, ladybug, teddy bear, airliner).
CLASSES = [980, 967, 107, 779, 985, 301, 850, 404]

#: Condition name -> (description, preset, overrides on top of it).
CONDITIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "base": ("readable base (clear)", "clear", {}),
    "no_jitter": ("jitter off", "clear", {"jitter": 0}),
    "no_colorshift": ("ColorShift off", "clear", {"color_shift": False}),
    "no_zoom_center": ("no zoom, no centering", "clear", {"schedule": "none"}),
    "ensemble_1": ("ensemble 1", "clear", {"ensemble": 1, "micro_batch": None}),
    "pixels": ("paper's pixels (fast)", "fast", {}),
    "ensemble_8": ("ensemble 8", "clear", {"ensemble": 8}),
}
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "ablations.json"


def condition_config(name: str, size: int, steps: int) -> piikit.InversionConfig:
    """The config of one condition at this budget (jitter scaled with the image size)."""
    _, preset, overrides = CONDITIONS[name]
    base = piikit.make_config(preset)
    jitter = round(base.jitter * size / 224)
    return piikit.make_config(preset, **{"image_size": size, "steps_per_stage": steps, "jitter": jitter, **overrides})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    parser.add_argument("--classes", type=int, nargs="+", default=CLASSES, help="class indices (a batch per 8)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--size", type=int, default=128, help="image size in px (default 128)")
    parser.add_argument("--steps", type=int, default=24, help="steps per stage (default 24)")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--table", action="store_true", help="print --out as a table and exit")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="add the conditions of these results files (runs of other conditions with the same "
                             "classes, seeds, size and steps, e.g. in parallel processes) to --out, then exit")
    args = parser.parse_args()

    if args.merge:
        report = json.loads(args.out.read_text())
        for path in args.merge:
            part = json.loads(path.read_text())
            same = ("model", "classes", "seeds", "size", "steps_per_stage")
            if any(part[k] != report[k] for k in same):
                raise SystemExit(f"{path}: other {', '.join(k for k in same if part[k] != report[k])} than {args.out}")
            report["conditions"].update(part["conditions"])
            report.setdefault("parts", []).append({k: part[k] for k in ("command", "date", "machine", "wall_s")})
        order = [c for c in CONDITIONS if c in report["conditions"]]
        report["conditions"] = {c: report["conditions"][c] for c in order}
        args.out.write_text(json.dumps(report, indent=1))
        print(ablation_table(report))
        return
    if args.table:
        print(ablation_table(json.loads(args.out.read_text())))
        return

    model = piikit.load_model(args.model)
    evaluators = default_evaluators(args.model)
    report: dict[str, Any] = {
        "command": "python benchmarks/ablations.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": torch.backends.cpu.get_cpu_capability(), "arch": platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "load_average_start": list(os.getloadavg()),
            "torch": torch.__version__, "piikit": piikit.__version__,
        },
        "model": args.model, "evaluators": evaluators, "classes": args.classes,
        "labels": [piikit.labels.label(c) for c in args.classes], "seeds": args.seeds,
        "size": args.size, "steps_per_stage": args.steps, "conditions": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name in args.conditions:
        config = condition_config(name, args.size, args.steps)
        print(f"{name}: {CONDITIONS[name][0]}", flush=True)
        per_seed, seconds, rows = {}, {}, []
        for seed in args.seeds:
            images, seconds[seed] = in_batches(args.classes, seed, lambda b, s: piikit.invert(
                model, args.classes[b], config, seed=s, device=args.device, progress=False))
            seed_rows = piikit.score(evaluators, images, args.classes, device=args.device)
            per_seed[seed] = summarize(seed_rows)
            rows += [{k: v for k, v in {**r, "seed": seed}.items() if k != "size"} for r in seed_rows]
        report["conditions"][name] = {
            "description": CONDITIONS[name][0], "preset": CONDITIONS[name][1], "config": config.to_dict(),
            "summary": summarize_seeds(per_seed, seconds, len(args.classes)), "rows": rows,
        }
        report["machine"]["load_average_end"] = list(os.getloadavg())
        report["wall_s"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(report, indent=1))
    print(ablation_table(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
