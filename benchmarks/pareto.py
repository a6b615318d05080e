"""Quality against seconds: which inversion settings give the most readable images per
second of CPU, as a table and a Pareto figure.

For each candidate (a preset plus overrides, :data:`CANDIDATES`) Lite0 is inverted on the
first ``--classes`` classes of ``benchmarks/quality.py``'s 48-class set (8 per call, as
there) for ``--seeds`` seeds, and the images are scored as ``quality.py`` scores them:
cross-model top-1 and top-5 by Lite1 and Lite2, mean target probability, total variation
per pixel; plus seconds per class. A shared machine makes seconds drift, so before each
candidate the bare floor (one forward + input-gradient backward of Lite0 at 8×3×224×224,
median of 5) and the load average are recorded beside it (``s/class ÷ floor``), and the
figure's cost axis is the *work* per class, which no load changes: forward + backward
passes of one 224×224 sample, ``steps × ensemble × Σ_stages (size / 224)²`` (a stage's cost
grows with its pixels). Its top axis converts work to seconds on a quiet 2-core AVX-512
machine at ``clear``'s measured rate (:data:`QUIET_CLEAR_S`); per-step speed levers (``fold_bn``,
bf16) are not in it: they change seconds, not work (``benchmarks/levers.py`` measures them).

Results accumulate in ``--json`` (one entry per candidate name, replaced when re-run, each
with its command, date, machine and load) and the figure is redrawn from all of them:
the mean of Lite1 and Lite2 top-1 (and TV) against s/class, the Pareto front joined.

    python benchmarks/pareto.py --configs clear,glance --classes 8 --seeds 2
    python benchmarks/pareto.py --classes 48 --seeds 2            # every candidate: hours on 2 cores
    python benchmarks/pareto.py --plot                             # redraw from the JSON only

Issue 19's target for a successor of ``clear``: top-1 >= 0.95 (Lite1) and >= 0.90 (Lite2),
top-5 >= 0.97, TV <= 0.04, at <= 8 s/class with 8-12 classes batched on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import piikit
import quality
from piikit.analysis.evaluate import default_evaluators, summarize
from piikit.engine.schedule import StageSchedule

HERE = Path(__file__).resolve().parent
MODEL = "efficientnet_lite0"

#: name -> (preset, overrides). Cheaper than ``clear`` along one axis each, plus the options.
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "clear": ("clear", {}),
    "glance": ("glance", {}),
    "clear 7x16 160px": ("clear", {"steps_per_stage": 16, "image_size": 160}),  # glance before 2026-11-30 pm
    "clear 7x32": ("clear", {"steps_per_stage": 32}),
    "clear 7x32 lr0.15": ("clear", {"steps_per_stage": 32, "lr": 0.15}),
    "clear 4 stages x48": ("clear", {"stages": 4, "steps_per_stage": 48}),
    "clear e=2": ("clear", {"ensemble": 2}),
    "clear 192px": ("clear", {"image_size": 192}),
    "clear bf16": ("clear", {"amp": True}),
    "clear 7x32 bf16": ("clear", {"steps_per_stage": 32, "amp": True}),
    "clear 3 stages x48": ("clear", {"stages": 3, "steps_per_stage": 48, "fold_bn": True}),
    "clear 4x96 e=2": ("clear", {"stages": 4, "steps_per_stage": 96, "ensemble": 2, "fold_bn": True}),
    "clear 4x48 tv0.1 192px": ("clear", {"stages": 4, "steps_per_stage": 48, "tv_weight": 0.1, "image_size": 192,
                                         "fold_bn": True}),
    "clear 4x48 tv0.1": ("clear", {"stages": 4, "steps_per_stage": 48, "tv_weight": 0.1, "fold_bn": True}),  # quick until 2026-11-30 16:00
    "glance + polish 50": ("glance", {"refine_steps": 50}),
    "clear 4x48 tv0.1 + polish 50": ("clear", {"stages": 4, "steps_per_stage": 48, "tv_weight": 0.1, "fold_bn": True,
                                               "refine_steps": 50}),
    "clear 4x48 tv0.1 + polish 25": ("clear", {"stages": 4, "steps_per_stage": 48, "tv_weight": 0.1, "fold_bn": True,
                                               "refine_steps": 25}),
    "quick": ("quick", {}),  # clear 4x48 tv0.1 e=3 + polish 50 (e=4 until 2026-11-30 19:10: the "+ polish 50" row)
    "clear 4x48 tv0.1 + polish 50 without BN prior": ("clear", {"stages": 4, "steps_per_stage": 48, "tv_weight": 0.1,
                                                               "fold_bn": True, "refine_steps": 50,
                                                               "refine_bn_prior": False}),
    "clear 4x48 tv0.1 + polish 100 without BN prior": ("clear", {"stages": 4, "steps_per_stage": 48, "tv_weight": 0.1,
                                                                "fold_bn": True, "refine_steps": 100,
                                                                "refine_bn_prior": False}),
    "clear 4x40 tv0.1 e=3 + polish 50": ("clear", {"stages": 4, "steps_per_stage": 40, "ensemble": 3, "tv_weight": 0.1,
                                                   "fold_bn": True, "refine_steps": 50}),
    # issue 32, item 4: quick at about 0.6 of its cost or less (benchmarks/preset_transfer.py)
    "quick 4x32 + polish 30": ("quick", {"steps_per_stage": 32, "refine_steps": 30}),
    # the same with a polish at TV 0.05 (not 0.01), which takes the ripple out of quick's 50-step polish (benchmarks/ripple.py)
    "quick 4x32 + polish 20 tv0.05": ("quick", {"steps_per_stage": 32, "refine_steps": 20, "refine_tv_weight": 0.05}),
    "quick 4x32 + polish 40 tv0.05 without BN prior": ("quick", {"steps_per_stage": 32, "refine_steps": 40,
                                                                 "refine_tv_weight": 0.05, "refine_bn_prior": False}),
    "quick polish tv0.05": ("quick", {"refine_tv_weight": 0.05}),
    # 4 x 32 with a longer polish at a TV weight between the two above: TV under 0.04 at less transfer cost
    "quick 4x32 + polish 40 tv0.03": ("quick", {"steps_per_stage": 32, "refine_steps": 40, "refine_tv_weight": 0.03}),  # quick without the ripple (benchmarks/ripple.py)
    "maco": ("clear", {"param": "maco", "lr": 0.5}),
    "maco 7x32": ("clear", {"param": "maco", "lr": 0.5, "steps_per_stage": 32}),
}
#: ``clear``'s seconds per class with 12 classes batched on a quiet 2-core AVX-512 CPU (the
#: design brief's measurement, 2026-11-30): converts work to quiet seconds in the figure.
QUIET_CLEAR_S = 16.0
TARGET = {"top1_lite1": 0.95, "top1_lite2": 0.90, "top5": 0.97, "tv": 0.04, "s_per_class": 8.0}


def work_per_class(config: dict[str, Any]) -> float:
    """Forward + backward passes of one 224×224 sample per class that ``config`` makes (the
    polish: one sample per step at full size)."""
    size = config["image_size"] or 224
    sizes = StageSchedule(size, config["stages"], config["schedule"]).sizes
    stages = config["steps_per_stage"] * config["ensemble"] * sum((s / 224) ** 2 for s in sizes)
    return stages + config.get("refine_steps", 0) * (size / 224) ** 2


def floor_seconds(model: piikit.Classifier, repeats: int = 5) -> float:
    """Median seconds of a bare forward + input-gradient backward at 8×3×224×224."""
    x = torch.rand(8, 3, 224, 224, generator=torch.Generator().manual_seed(0), requires_grad=True)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        model(x).logsumexp(1).sum().backward()
        if i:  # the first pass warms the allocator up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, classes: list[int], seeds: list[int], model: piikit.Classifier) -> dict[str, Any]:
    preset, overrides = CANDIDATES[name]
    config = piikit.make_config(preset, **overrides)
    evaluators = default_evaluators(MODEL)
    load_before, floor = os.getloadavg()[0], floor_seconds(model)
    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    seconds: dict[int, float] = {}
    for seed in seeds:
        images, seconds[seed] = quality.in_batches(classes, seed, lambda b, s: piikit.invert(
            model, classes[b], config, seed=s, device="cpu", progress=False))
        per_seed[seed] = summarize(piikit.score(evaluators, images, classes, device="cpu"))
    summary = quality.summarize_seeds(per_seed, seconds, len(classes))
    return {
        "name": name, "preset": preset, "overrides": overrides, "config": config.to_dict(),
        "classes": classes, "seeds": seeds, "summary": summary,
        "floor_s": floor, "s_per_class_over_floor": summary["s_per_class"]["mean"] / floor,
        "load_before": load_before, "load_after": os.getloadavg()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} CPUs",
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }


def row(entry: dict[str, Any]) -> dict[str, float]:
    """The figures of one entry that the table and the plot use."""
    s = entry["summary"]
    lite1, lite2 = s["efficientnet_lite1"], s["efficientnet_lite2"]
    return {
        "s_per_class": s["s_per_class"]["mean"], "over_floor": entry["s_per_class_over_floor"],
        "work": work_per_class(entry["config"]),
        "top1_lite1": lite1["top1"]["mean"], "top1_lite2": lite2["top1"]["mean"],
        "top1_spread": max(lite1["top1"]["spread"], lite2["top1"]["spread"]),
        "top5": min(lite1["top5"]["mean"], lite2["top5"]["mean"]),
        "prob": (lite1["prob"]["mean"] + lite2["prob"]["mean"]) / 2, "tv": lite1["tv"]["mean"],
    }


def table(entries: list[dict[str, Any]]) -> str:
    lines = [f"{'candidate':<20} {'n':>3} {'seeds':>5} {'work':>5} {'s/class':>8} {'÷floor':>7} {'load':>9} "
             f"{'top1 L1':>7} {'top1 L2':>7} {'spread':>6} {'top5':>5} {'prob':>5} {'TV':>6}"]
    for e in sorted(entries, key=lambda e: row(e)["work"]):
        r = row(e)
        lines.append(f"{e['name']:<20} {len(e['classes']):>3} {len(e['seeds']):>5} {r['work']:>5.0f} {r['s_per_class']:>8.1f} "
                     f"{r['over_floor']:>7.0f} {e['load_before']:>4.1f}-{e['load_after']:<4.1f} "
                     f"{r['top1_lite1']:>7.2f} {r['top1_lite2']:>7.2f} {r['top1_spread']:>6.2f} {r['top5']:>5.2f} "
                     f"{r['prob']:>5.2f} {r['tv']:>6.3f}")
    return "\n".join(lines)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and score (higher),
    in order of cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -float("inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot(entries: list[dict[str, Any]], path: Path) -> None:
    from piikit.figures import new_figure

    rows = [row(e) for e in entries]
    fig = new_figure(figsize=(11, 4.6))
    score_ax, tv_ax = fig.subplots(1, 2)
    cost = [r["work"] for r in rows]
    clear_work = work_per_class(piikit.PRESETS["clear"].to_dict())
    mean_top1 = [(r["top1_lite1"] + r["top1_lite2"]) / 2 for r in rows]
    score_ax.scatter(cost, [r["top1_lite1"] for r in rows], marker="^", color="tab:blue", label="top-1, Lite1")
    score_ax.scatter(cost, [r["top1_lite2"] for r in rows], marker="v", color="tab:orange", label="top-1, Lite2")
    score_ax.scatter(cost, mean_top1, marker="o", color="black", label="mean of both")
    front = pareto_front(list(zip(cost, mean_top1)))
    score_ax.plot([cost[i] for i in front], [mean_top1[i] for i in front], "k--", lw=1, label="Pareto front (mean)")
    # Candidates of (almost) equal work would print their names on top of each other: stack them.
    lift = [9 * sum(abs(cost[j] - cost[i]) < 20 for j in range(i)) for i in range(len(cost))]
    for x, y, e, up in zip(cost, mean_top1, entries, lift):
        score_ax.annotate(e["name"], (x, y), textcoords="offset points", xytext=(4, 4 - up), fontsize=7)
    score_ax.axhline(TARGET["top1_lite2"], color="tab:orange", lw=0.6, ls=":")
    score_ax.axhline(TARGET["top1_lite1"], color="tab:blue", lw=0.6, ls=":")
    for ax in (score_ax, tv_ax):
        ax.axvline(clear_work * TARGET["s_per_class"] / QUIET_CLEAR_S, color="grey", lw=0.6, ls=":")
        quiet = ax.secondary_xaxis("top", functions=(lambda w: w * QUIET_CLEAR_S / clear_work,
                                                     lambda t: t * clear_work / QUIET_CLEAR_S))
        quiet.set_xlabel(f"≈ s/class on a quiet 2-core CPU (clear = {QUIET_CLEAR_S:.0f} s) without fold_bn; "
                         "dotted: target", fontsize=8)
    # From just under the lowest score: the 48-class candidates all lie within 0.8-1.0.
    lowest = min(min(r["top1_lite1"], r["top1_lite2"]) for r in rows)
    score_ax.set(xlabel="work per class (224² sample passes)", ylabel="cross-model top-1",
                 ylim=(max(-0.03, lowest - 0.05), 1.01))
    score_ax.legend(fontsize=7, loc="lower right")
    tv_ax.scatter(cost, [r["tv"] for r in rows], color="tab:green")
    for x, r, e in zip(cost, rows, entries):
        tv_ax.annotate(e["name"], (x, r["tv"]), textcoords="offset points", xytext=(6, 0), fontsize=7, va="center")
    tv_ax.axhline(TARGET["tv"], color="tab:green", lw=0.6, ls=":", label=f"target TV ≤ {TARGET['tv']}")
    tv_ax.set(xlabel="work per class (224² sample passes)", ylabel="TV per pixel (lower: smoother)")
    tv_ax.legend(fontsize=7)
    first = entries[0]
    fig.suptitle(f"Lite0 inverted, scored by Lite1 / Lite2: {len(first['classes'])} classes × "
                 f"{len(first['seeds'])} seeds, {first['machine']}, {first['threads']} thread(s)", fontsize=9)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", help=f"comma-separated candidates (default: all): {', '.join(CANDIDATES)}")
    parser.add_argument("--classes", type=int, default=8, help="the first N of quality.py's 48 classes (a multiple of 8)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds first-seed .. first-seed + N - 1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "pareto.json")
    parser.add_argument("--plot", action="store_true", help="only redraw the table and figure from --json")
    args = parser.parse_args()
    entries: dict[str, dict[str, Any]] = (
        {e["name"]: e for e in json.loads(args.json.read_text())} if args.json.exists() else {})
    if not args.plot:
        names = args.configs.split(",") if args.configs else list(CANDIDATES)
        unknown = [n for n in names if n not in CANDIDATES]
        if unknown:
            parser.error(f"unknown candidate(s) {unknown}; choose from {', '.join(CANDIDATES)}")
        model = piikit.load_model(MODEL)
        classes = quality.CLASSES[: args.classes]
        for name in names:
            print(f"{name}: {len(classes)} classes x {args.seeds} seeds", flush=True)
            entries[name] = measure(name, classes, list(range(args.first_seed, args.first_seed + args.seeds)), model)
            args.json.write_text(json.dumps(list(entries.values()), indent=1))
    print(table(list(entries.values())))
    plot(list(entries.values()), args.json.with_suffix(".png"))
    print(f"wrote {args.json} and {args.json.with_suffix('.png')}")


if __name__ == "__main__":
    main()
