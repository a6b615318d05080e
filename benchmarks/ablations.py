"""PII's parts, each switched off (or changed), on two bases that work, over random classes.

Two *bases* (issue 28: an ablation means something only on top of a base that transfers):

    pixels      the paper's pixel PII at the ``fast`` budget (224 px, 7 x 64 steps, ensemble 4,
                lr 0.03; jitter, ColorShift, zoom + centering as in the paper; no prior)
    readable    the ``quick`` preset (a Fourier image with grey borders, 4 x 48 steps, ensemble
                3, TV 0.1, then a 50-step DeepInversion polish): the images the series shows

Each *condition* changes one thing of a base (:data:`CONDITIONS`): ColorShift off, jitter
off, the paper's Fig. 6 schedules (zoom only, centering only, neither; both is the base),
neither at equal steps and at equal work, ensembles of 1 / 2 / 4 / 8, and, on pixels, the
Fig. 6 schedules without ColorShift and the paper's Fig. 4 sweep (TV weight x ColorShift).

*Equal work*: the staged schedules spend their early steps on small images (at 224 px in 7
stages the optimized image has 56, 84, ..., 224 px), so at equal steps "neither" (full size
from the first step) does 2.2x (pixels; 1.9x for readable) the forward/backward work. Its
equal-work twin gets fewer steps per stage, so that the model sees as many pixels in all as
the base's (work per class, in full-size sample passes, is in each unit's ``work``).

Classes: ``--n-classes`` (16) drawn at random from the 1000 ImageNet classes with
``torch.randperm(1000, generator=torch.Generator().manual_seed(DRAW_SEED))`` (``--draw-seed``,
28), sorted; not chosen for transferring well. ``--seeds`` 0 1 2. Lite0 is inverted, 8
classes per :func:`piikit.invert` call; Lite1 and Lite2 score the images (top-1, top-5,
target probability), and TV per pixel measures noise (:func:`piikit.score`).

The unit of work is (base, condition, seed). Units run in :func:`plan` order (the paper's
main claims first, seed by seed) and after each one the results file is rewritten atomically
with the command, date, machine, threads and load; a rerun skips finished units, so the run
can be stopped and resumed at any time. Each unit's images are saved as one JPEG strip of
112-px thumbnails (``thumbs/BASE/CONDITION/seedS.jpg``, classes in order), for grids in the
notebooks (:func:`piikit.widgets.condition_grid`) without optimizing.

Statistics live in the package (:mod:`piikit.analysis.ablations`: ``summarize_ablations``,
``ablation_table``, ``ablation_takeaways``), so notebooks read the results after ``pip install
piikit``: per base and condition, the mean of each metric over classes and seeds, with a 95 %
bootstrap interval over classes (seeds averaged within a class) and one over seeds (classes
averaged within a seed); and the paired difference to its base (per class, over the seeds
both ran), with a 95 % bootstrap interval over classes. A condition *differs* from its base
on a metric only when that paired interval excludes 0.

The results live in ``piikit/data/ablations/`` (package data: the notebooks read them after
``pip install piikit``, issue 34), ``ablations.json`` plus ``thumbs/``.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/ablations.py > ablations.log 2>&1 &   # everything, resumable
    python benchmarks/ablations.py --units pixels/base readable/base --seeds 0
    python benchmarks/ablations.py --table                       # the tables from the file
    python benchmarks/ablations.py --table --over seeds          # the same with intervals over seeds
    python benchmarks/ablations.py --plan                        # the units, their order and which are done

Two cores run two processes, each with its own ``--out`` (a copy of the results folder); then
``--merge`` adds their new units to one folder:

    python benchmarks/ablations.py --merge run-a run-b           # into the default --out
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import piikit  # noqa: E402
from piikit.analysis.ablations import ablation_table as format_tables  # noqa: E402 (ablations_gpu imports both from here)
from piikit.analysis.ablations import summarize_ablations as summarize  # noqa: E402
from piikit.analysis.evaluate import default_evaluators  # noqa: E402
from quality import in_batches  # noqa: E402

DRAW_SEED = 28
N_CLASSES = 16
SEEDS = [0, 1, 2]
THUMB = 112
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "piikit" / "data" / "ablations"

#: Base name -> (description, preset).
BASES: dict[str, tuple[str, str]] = {
    "pixels": ("the paper's pixel PII at the fast budget (224 px, 7 x 64 steps, e = 4; BatchNorm folded)", "fast"),
    "readable": ("the readable base: quick (Fourier image, 4 x 48 steps, e = 3, TV 0.1, 50-step polish)", "quick"),
    # Only on a GPU (benchmarks/ablations_gpu.py): no condition lists it, so the CPU plan skips it.
    "paper": ("the paper's own budget: pixels, 7 x 400 steps, e = 32 (BatchNorm folded)", "paper"),
}

TV_WEIGHTS = (0.01, 0.1, 1.0)

#: Condition name -> (description, overrides, the bases it runs on). "equal_work" in the
#: overrides is resolved per base by :func:`condition_config`.
CONDITIONS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "base": ("the base", {}, ("pixels", "readable")),
    "no_colorshift": ("ColorShift off", {"color_shift": False}, ("pixels", "readable")),
    "no_zoom_center": ("neither zoom nor centering, equal steps (Fig. 6 'None')", {"schedule": "none"},
                       ("pixels", "readable")),
    "ensemble_1": ("ensemble of 1", {"ensemble": 1}, ("pixels", "readable")),
    "no_jitter": ("jitter off", {"jitter": 0}, ("pixels", "readable")),
    "zoom_only": ("zoom only (Fig. 6 'Z')", {"schedule": "zoom"}, ("pixels", "readable")),
    "center_only": ("centering only (Fig. 6 'C')", {"schedule": "center"}, ("pixels", "readable")),
    "no_zoom_center_equal_work": ("neither zoom nor centering, equal work (fewer steps)",
                                  {"schedule": "none", "equal_work": True}, ("pixels", "readable")),
    "ensemble_2": ("ensemble of 2", {"ensemble": 2}, ("pixels", "readable")),
    "ensemble_8": ("ensemble of 8", {"ensemble": 8}, ("pixels", "readable")),
    "ensemble_4": ("ensemble of 4", {"ensemble": 4}, ("readable",)),  # pixels' base has 4
    "zoom_only_no_colorshift": ("zoom only, ColorShift off (Fig. 6)", {"schedule": "zoom", "color_shift": False},
                                ("pixels",)),
    "center_only_no_colorshift": ("centering only, ColorShift off (Fig. 6)",
                                  {"schedule": "center", "color_shift": False}, ("pixels",)),
    "no_zoom_center_no_colorshift": ("neither, ColorShift off (Fig. 6)", {"schedule": "none", "color_shift": False},
                                     ("pixels",)),
    **{f"tv_{w:g}{cs}": (f"TV weight {w:g}, ColorShift {'off' if cs else 'on'} (Fig. 4)",
                         {"tv_weight": w, **({"color_shift": False} if cs else {})}, ("pixels",))
       for w in TV_WEIGHTS for cs in ("", "_no_colorshift")},
}

#: The paper's main claims first (ColorShift, zoom + centering, ensembling, jitter), on both
#: bases, seed by seed, so partial results answer them; then the rest.
FIRST = ("base", "no_colorshift", "no_zoom_center", "ensemble_1", "no_jitter")


def plan(seeds: Sequence[int]) -> list[tuple[str, str, int]]:
    """Every (base, condition, seed) unit in the order they run."""
    units = []
    rest = [c for c in CONDITIONS if c not in FIRST]
    for group in (FIRST, rest):
        for seed in seeds:
            for c in group:
                # The readable base's units cost about a third of the pixels' ones: first, so
                # each condition gets an answer sooner (the bases themselves: pixels first).
                order = ("pixels", "readable") if c == "base" else ("readable", "pixels")
                units += [(b, c, seed) for b in order if b in CONDITIONS[c][2]]
    return units


def unit_key(base: str, condition: str, seed: int) -> str:
    return f"{base}/{condition}/{seed}"


def stage_sizes(config: piikit.InversionConfig, size: int) -> list[float]:
    """The sides of the image the model sees in each stage (the schedule module's rule; the
    centering-only mode and "none" show the full canvas at every step)."""
    if config.schedule in ("none", "center"):
        return [float(size)] * config.stages
    step = size / (config.stages + 1)
    return [round((k + 2) * step) for k in range(config.stages)]


def work(config: piikit.InversionConfig, size: int) -> float:
    """Forward + input-gradient passes per class, in full-size samples: every stage's steps x
    ensemble x (side / size)^2, plus the polish's steps (one copy at full size)."""
    staged = sum(config.steps_per_stage * config.ensemble * (s / size) ** 2 for s in stage_sizes(config, size))
    return staged + config.refine_steps


def condition_config(base: str, condition: str, size: int = 224) -> piikit.InversionConfig:
    """The config of a condition on a base (at ``size`` px)."""
    overrides = dict(CONDITIONS[condition][1])
    # BatchNorm folded into the convolutions changes only rounding and saves a sixth of the
    # time (quick has it already).
    base_config = piikit.make_config(BASES[base][1], image_size=size, fold_bn=True)
    if overrides.pop("equal_work", False):
        target = work(base_config, size) - base_config.refine_steps
        per_stage = target / (base_config.stages * base_config.ensemble)
        overrides["steps_per_stage"] = max(1, round(per_stage))
    return base_config.replace(**overrides)


def draw_classes(n: int = N_CLASSES, seed: int = DRAW_SEED) -> list[int]:
    """``n`` ImageNet classes drawn at random with a fixed seed, sorted."""
    return sorted(torch.randperm(1000, generator=torch.Generator().manual_seed(seed))[:n].tolist())


# ---------------------------------------------------------------------------- files


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def thumbnail_strip(images: torch.Tensor, size: int = THUMB, quality: int = 85) -> bytes:
    """One JPEG: the images side by side, each ``size`` px square."""
    small = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    strip = torch.cat(list(small), dim=-1)  # C x size x (N * size)
    array = (strip.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def machine() -> dict[str, Any]:
    return {"cpu": torch.backends.cpu.get_cpu_capability(), "arch": platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "node": platform.node(), "torch": torch.__version__,
            "piikit": piikit.__version__}


def load_report(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The results file, or a new one; refuses one made with other settings."""
    path = out / "ablations.json"
    if path.exists():
        report = json.loads(path.read_text())
        changed = [k for k in settings if report.get(k) != settings[k]]
        if changed:
            raise SystemExit(f"{path} was made with other {', '.join(changed)}; pass another --out")
        return report
    return {**settings, "bases": {b: {"description": d, "preset": p} for b, (d, p) in BASES.items()},
            "conditions": {c: {"description": d, "bases": list(b)} for c, (d, _, b) in CONDITIONS.items()},
            "runs": [], "units": {}}


def merge_results(out: Path, others: Sequence[Path]) -> list[str]:
    """Add to ``out`` the units of other results folders (runs side by side, each with its own
    ``--out``), with their thumbnails and run records; the unit keys added, in order.

    The folders must share the settings (model, evaluators, size, classes). A unit that ``out``
    already holds is kept as it is: a unit is one deterministic run, so a second copy of it is
    another measurement of the same thing and is not averaged in."""
    report = json.loads((out / "ablations.json").read_text())
    added = []
    for other in others:
        theirs = json.loads((other / "ablations.json").read_text())
        changed = [k for k in ("model", "evaluators", "size", "draw_seed", "classes") if theirs.get(k) != report.get(k)]
        if changed:
            raise SystemExit(f"{other} was made with other {', '.join(changed)} than {out}; not merged")
        new = {k: u for k, u in theirs["units"].items() if k not in report["units"]}
        for key, unit in new.items():
            (out / unit["thumbs"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(other / unit["thumbs"], out / unit["thumbs"])
            report["units"][key] = unit
        known = {r.get("started") for r in report.setdefault("runs", [])}
        report["runs"] += [r for r in theirs.get("runs", []) if r.get("started") not in known]
        report["updated"] = max(report.get("updated", ""), theirs.get("updated", ""))
        added += list(new)
    report["summary"] = summarize(report)
    write_atomic(out / "ablations.json", json.dumps(report, indent=1).encode())
    return added


def run_unit(model: Any, report: dict[str, Any], base: str, condition: str, seed: int, out: Path,
             device: str, config: piikit.InversionConfig | None = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Invert, score and save one unit; its record for the results file."""
    config = config or condition_config(base, condition, report["size"])
    classes = report["classes"]
    load_start = list(os.getloadavg())
    images, seconds = in_batches(classes, seed, lambda b, s: piikit.invert(
        model, classes[b], config, seed=s, device=device, progress=False, callbacks=callbacks))
    rows = piikit.score(report["evaluators"], images, classes, device=device)
    thumb = Path("thumbs") / base / condition / f"seed{seed}.jpg"
    (out / thumb).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out / thumb, thumbnail_strip(images))
    per_image = []
    for i, target in enumerate(classes):
        mine = [r for r in rows if r["image"] == i]
        per_image.append({"target": target, "tv": round(mine[0]["tv"], 5),
                          "prob": {r["evaluator"]: round(r["prob"], 5) for r in mine},
                          "rank": {r["evaluator"]: r["rank"] for r in mine}})
    return {"base": base, "condition": condition, "seed": seed, "config": config.to_dict(),
            "work": round(work(config, report["size"]), 1), "seconds": round(seconds, 1),
            "s_per_class": round(seconds / len(classes), 2), "threads": torch.get_num_threads(),
            "load_start": load_start, "load_end": list(os.getloadavg()),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "thumbs": thumb.as_posix(), "images": per_image}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", nargs="+", metavar="BASE/CONDITION",
                        help="run only these (e.g. pixels/base readable/no_colorshift); default: the whole plan")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    parser.add_argument("--n-classes", type=int, default=N_CLASSES)
    parser.add_argument("--draw-seed", type=int, default=DRAW_SEED)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    parser.add_argument("--table", action="store_true", help="print the results file's tables and exit")
    parser.add_argument("--over", choices=["classes", "seeds"], default="classes",
                        help="--table's intervals: over classes (with the paired differences) or over seeds")
    parser.add_argument("--plan", action="store_true", help="list the units in order (done ones marked) and exit")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="DIR",
                        help="add the units of these results folders (side-by-side runs) to --out and exit")
    args = parser.parse_args()

    settings = {"model": args.model, "evaluators": default_evaluators(args.model), "size": args.size,
                "draw_seed": args.draw_seed, "classes": draw_classes(args.n_classes, args.draw_seed)}
    if args.table:
        print(format_tables(json.loads((args.out / "ablations.json").read_text()), over=args.over))
        return
    if args.merge:
        added = merge_results(args.out, args.merge)
        print(f"{len(added)} units added to {args.out / 'ablations.json'}: {', '.join(added) or 'none'}")
        return
    report = load_report(args.out, settings)
    report["labels"] = [piikit.labels.label(c) for c in report["classes"]]
    report["draw"] = (f"sorted(torch.randperm(1000, generator=torch.Generator().manual_seed({args.draw_seed}))"
                      f"[:{args.n_classes}]): at random, not chosen for transferring well")
    units = plan(args.seeds)
    if args.units:
        unknown = [u for u in args.units if u.count("/") != 1 or u.split("/")[1] not in CONDITIONS
                   or u.split("/")[0] not in BASES]
        if unknown:
            raise SystemExit(f"unknown unit(s) {', '.join(unknown)}: BASE/CONDITION with BASE in {', '.join(BASES)} "
                             f"and CONDITION in {', '.join(CONDITIONS)}")
        units = [u for u in units if f"{u[0]}/{u[1]}" in args.units]
    todo = [u for u in units if unit_key(*u) not in report["units"]]
    if args.plan:
        for u in units:
            print(f"{'done' if unit_key(*u) not in [unit_key(*t) for t in todo] else '    '}  {unit_key(*u)}")
        return

    args.out.mkdir(parents=True, exist_ok=True)
    report["runs"].append({"command": "python benchmarks/ablations.py " + " ".join(sys.argv[1:]),
                           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           "machine": machine(), "load_average_start": list(os.getloadavg()),
                           "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}})
    print(f"{len(todo)} of {len(units)} units to run; classes {report['classes']}", flush=True)
    model = piikit.load_model(args.model)
    for base, condition, seed in todo:
        print(f"{unit_key(base, condition, seed)}: {CONDITIONS[condition][0]}", flush=True)
        report["units"][unit_key(base, condition, seed)] = run_unit(model, report, base, condition, seed,
                                                                   args.out, args.device)
        report["runs"][-1]["load_average_end"] = list(os.getloadavg())
        report["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        report["summary"] = summarize(report)
        write_atomic(args.out / "ablations.json", json.dumps(report, indent=1).encode())
        u = report["units"][unit_key(base, condition, seed)]
        s = report["summary"][base][condition]
        evs = report["evaluators"]
        print(f"  {u['s_per_class']:.1f} s/class; so far top-1 " +
              " / ".join(f"{s[ev]['top1']['mean']:.2f}" for ev in evs) + f", TV {s['tv']['tv']['mean']:.3f}",
              flush=True)
    print(format_tables(report))


if __name__ == "__main__":
    main()
