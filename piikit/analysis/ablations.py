"""The ablation benchmark's results, read: which part of PII matters, with intervals that decide.

>>> report = ablation_results()                          # the results shipped with piikit  # doctest: +SKIP
>>> print(ablation_table(report, "pixels"))              # doctest: +SKIP
>>> print("\\n".join(ablation_takeaways(report, ["no_colorshift"])))  # doctest: +SKIP

``benchmarks/ablations.py`` inverts 16 random ImageNet classes x seeds 0, 1, 2 per *unit*
(base, condition, seed), on two bases (``pixels``: the paper's pixel PII at the ``fast``
budget; ``readable``: the ``quick`` preset), and scores each image with other models. This
module is what turns those units into statements (:func:`summarize_ablations`):

* per base and condition, each metric's mean over classes and seeds, with a 95 % bootstrap
  interval over classes (each class's mean over the seeds) and one over seeds (each seed's
  mean over the classes);
* against its base, per class on the seeds both ran, the paired difference with its 95 %
  bootstrap interval over classes. A condition *differs* on a metric when that interval
  excludes 0; ``apart`` says whether, more strictly, the condition's own interval over
  classes excludes the base's (no overlap).

Conditions with no finished unit are absent from the summary and "not measured yet" in the
table and the takeaways: nothing is filled in. Numbers: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ablation_results", "ablation_thumbnails", "ablation_images", "bootstrap_interval", "summarize_ablations",
           "ablation_table", "ablation_takeaways", "recognition_verdict", "describe_difference", "condition_description",
           "planned_on", "METRICS"]

#: Per evaluator: top-1 and top-5 hit rates and the target probability; TV (noise) once.
METRICS = ("top1", "top5", "prob", "tv")
_NAMES = {"top1": "top-1", "top5": "top-5", "prob": "probability", "tv": "TV"}


def ablation_results(results: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ablation benchmark's results: a folder holding ``ablations.json`` and its
    ``thumbs/``, the JSON file itself, an already loaded dict, or None for the results shipped
    with piikit (``piikit/data/ablations``). The dict gets ``"folder"`` (where the thumbnails
    are) added."""
    if isinstance(results, Mapping):
        return dict(results)
    path = Path(str(resources.files("piikit") / "data" / "ablations")) if results is None else Path(results)
    if path.is_dir():
        path = path / "ablations.json"
    if not path.is_file():
        raise FileNotFoundError(f"no ablation results at {path}: run benchmarks/ablations.py, or pass its --out folder")
    return {**json.loads(path.read_text()), "folder": str(path.parent)}


def ablation_thumbnails(results: str | os.PathLike[str] | Mapping[str, Any] | None, base: str, condition: str,
                        seed: int) -> torch.Tensor:
    """One unit's saved images as an N×C×h×w float tensor in [0, 1], in the order of the
    results' ``classes``."""
    from PIL import Image

    report = ablation_results(results)
    unit = report["units"].get(f"{base}/{condition}/{seed}")
    if unit is None:
        done = sorted({k.rsplit("/", 1)[0] for k in report["units"]})
        raise KeyError(f"no unit {base}/{condition}/{seed} in the results; finished: {', '.join(done)}")
    with Image.open(Path(report["folder"]) / unit["thumbs"]) as strip:
        pixels = torch.from_numpy(np.asarray(strip.convert("RGB")).copy()).permute(2, 0, 1).float() / 255
    return torch.stack(pixels.chunk(len(unit["images"]), dim=-1))


def ablation_images(results: str | os.PathLike[str] | Mapping[str, Any] | None, base: str,
                    conditions: Sequence[str], seed: int = 0) -> dict[str, torch.Tensor | None]:
    """Each condition's saved images on one base and seed (:func:`ablation_thumbnails`), None
    where that unit has not run yet; for :func:`piikit.plot_ablation_grid`. Conditions the
    benchmark does not plan on this base (``ensemble_4`` on pixels, whose base has 4) are left
    out, so that no row waits for a unit that will never come."""
    report = ablation_results(results)
    return {c: ablation_thumbnails(report, base, c, seed) if f"{base}/{c}/{seed}" in report["units"] else None
            for c in conditions if planned_on(report, base, c)}


def planned_on(report: Mapping[str, Any], base: str, condition: str) -> bool:
    """Whether the benchmark has units of ``condition`` on ``base`` (results without a plan:
    every condition on every base)."""
    return base in report.get("conditions", {}).get(condition, {}).get("bases", [base])


# ---------------------------------------------------------------------------- statistics


def bootstrap_interval(values: np.ndarray, axis: int, n: int = 10000, seed: int = 0) -> list[float]:
    """95 % percentile interval of the mean of ``values`` (seeds x classes), resampling along
    ``axis`` (1: classes, 0: seeds) after averaging the other axis. One value: [it, it]."""
    flat = np.asarray(values, dtype=float).mean(axis=1 - axis)
    if len(flat) < 2:
        return [float(flat.mean())] * 2
    rng = np.random.default_rng(seed)
    means = flat[rng.integers(0, len(flat), size=(n, len(flat)))].mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def _per_class(unit: Mapping[str, Any], evaluator: str | None) -> dict[int, dict[str, float]]:
    """class -> metric for one unit (TV does not depend on the evaluator)."""
    out = {}
    for img in unit["images"]:
        rank = img["rank"][evaluator] if evaluator else 0
        out[img["target"]] = {"top1": float(rank == 1), "top5": float(rank <= 5),
                              "prob": img["prob"][evaluator] if evaluator else float("nan"), "tv": img["tv"]}
    return out


def _matrix(units: Sequence[Mapping[str, Any]], evaluator: str | None, metric: str) -> tuple[np.ndarray, list[int]]:
    """seeds x classes array of one metric (one unit per seed, seeds in order), and the seeds."""
    per = {u["seed"]: _per_class(u, evaluator) for u in units}
    seeds = sorted(per)
    classes = sorted(set.intersection(*(set(p) for p in per.values())))
    return np.array([[per[s][c][metric] for c in classes] for s in seeds]), seeds


_CACHE: dict[str, dict[str, Any]] = {}


def summarize_ablations(results: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``base -> condition -> key -> metric -> stats`` from the finished units (key: an
    evaluator, or ``"tv"``). Each condition also has ``seeds``, ``work`` (forward/backward
    passes per class, in full-size samples) and ``s_per_class``. Stats: ``mean``,
    ``ci_classes``, ``ci_seeds``, ``n_classes``, ``n_seeds``; for a condition other than the
    base, on the seeds both ran: ``base_mean``, ``base_ci`` (over classes), ``diff``,
    ``ci_diff``, ``differs`` (the paired interval excludes 0), ``apart`` (the two intervals
    over classes do not overlap) and ``paired_seeds``. Conditions not run are absent."""
    report = ablation_results(results)
    key = hashlib.sha1(json.dumps([report["units"], report.get("evaluators")], sort_keys=True).encode()).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    units = report["units"]
    bases = list(dict.fromkeys([*report.get("bases", {}), *(u["base"] for u in units.values())]))
    out: dict[str, Any] = {}
    for base in bases:
        out[base] = {}
        ref = {u["seed"]: u for u in units.values() if (u["base"], u["condition"]) == (base, "base")}
        for condition in dict.fromkeys([*report.get("conditions", {}), *(u["condition"] for u in units.values())]):
            mine = sorted((u for u in units.values() if (u["base"], u["condition"]) == (base, condition)),
                          key=lambda u: u["seed"])
            if not mine:
                continue
            entry: dict[str, Any] = {"seeds": [u["seed"] for u in mine], "work": mine[0]["work"],
                                     "s_per_class": float(np.mean([u["s_per_class"] for u in mine]))}
            paired = [u for u in mine if u["seed"] in ref]
            for ev, metric in [(ev, m) for ev in report["evaluators"] for m in METRICS[:3]] + [(None, "tv")]:
                values, seeds = _matrix(mine, ev, metric)
                stats: dict[str, Any] = {"mean": float(values.mean()), "ci_classes": bootstrap_interval(values, 1),
                                         "ci_seeds": bootstrap_interval(values, 0), "n_classes": values.shape[1],
                                         "n_seeds": len(seeds)}
                if condition != "base" and paired:
                    mine_v, both = _matrix(paired, ev, metric)
                    ref_v, _ = _matrix([ref[s] for s in both], ev, metric)
                    if mine_v.shape != ref_v.shape:
                        raise ValueError(f"{base}/{condition} and its base cover different classes")
                    diff = mine_v - ref_v
                    ci = bootstrap_interval(diff, 1)
                    ref_ci = bootstrap_interval(ref_v, 1)
                    own_ci = bootstrap_interval(mine_v, 1)
                    stats.update(base_mean=float(ref_v.mean()), base_ci=ref_ci, diff=float(diff.mean()), ci_diff=ci,
                                 differs=bool(ci[0] > 0 or ci[1] < 0),
                                 apart=bool(own_ci[0] > ref_ci[1] or own_ci[1] < ref_ci[0]), paired_seeds=both)
                entry.setdefault(ev or "tv", {})[metric] = stats
            out[base][condition] = entry
    out = {base: rows for base, rows in out.items() if rows}
    _CACHE[key] = out
    return out


def _short(evaluator: str) -> str:
    return evaluator.replace("efficientnet_", "").capitalize()


def condition_description(report: Mapping[str, Any], condition: str) -> str:
    """The benchmark's words for a condition (e.g. "zoom only (Fig. 6 'Z')")."""
    return report.get("conditions", {}).get(condition, {}).get("description", condition)


def ablation_table(results: str | os.PathLike[str] | Mapping[str, Any] | None = None, base: str | None = None,
                   conditions: Sequence[str] | None = None, over: str = "classes") -> str:
    """One plain-text table per base: per condition, each metric's mean [95 % interval over
    classes]; under it, the paired difference to the base [its interval], ``*`` where it
    differs. With ``over="seeds"`` the intervals are over seeds (each seed's mean over the
    classes) and the paired rows are left out. Conditions asked for but not run are listed
    as "not measured yet"."""
    if over not in ("classes", "seeds"):
        raise ValueError(f"over must be 'classes' or 'seeds', not {over!r}")
    report = ablation_results(results)
    summary = summarize_ablations(report)
    evs = report["evaluators"]
    cols = [(ev, m) for ev in evs for m in METRICS[:3]] + [("tv", "tv")]
    width = 24

    def cell(mean: float, ci: Sequence[float], digits: int, sign: str = "") -> str:
        return f"{mean:{sign}.{digits}f} [{ci[0]:{sign}.{digits}f},{ci[1]:{sign}.{digits}f}]"

    lines = []
    for name in [base] if base else list(summary):
        rows = summary.get(name, {})
        wanted = list(conditions) if conditions else [c for c in report.get("conditions", rows)
                                                      if planned_on(report, name, c)]
        description = report.get("bases", {}).get(name, {}).get("description", name)
        lines.append(f"\n{name}: {description}; {len(report['classes'])} classes (draw seed {report.get('draw_seed')})")
        head = "".join(f"{'TV' if m == 'tv' else _short(ev) + ' ' + _NAMES[m]:<{width}}" for ev, m in cols)
        lines.append(f"{'condition':<30}{'seeds':<7}{'work':>5}  {head}")
        for condition in wanted:
            entry = rows.get(condition)
            if entry is None:
                lines.append(f"{condition:<30}not measured yet")
                continue
            stats = [(entry[ev][m], 3 if m == "tv" else 2) for ev, m in cols]
            means = "".join(f"{cell(s['mean'], s['ci_' + over], d):<{width}}" for s, d in stats)
            lines.append(f"{condition:<30}{','.join(map(str, entry['seeds'])):<7}{entry['work']:>5.0f}  {means}")
            if "diff" in stats[0][0] and over == "classes":
                diffs = "".join(f"{cell(s['diff'], s['ci_diff'], d, '+') + ('*' if s['differs'] else ''):<{width}}"
                                for s, d in stats)
                paired = ",".join(map(str, stats[0][0]["paired_seeds"]))
                lines.append(f"{'  - base (paired)':<30}{paired:<7}{'':>5}  {diffs}")
    lines.append("\nmean [95% bootstrap interval over classes]; '- base': the paired per-class difference to the base;"
                 "\n* its interval excludes 0 (the condition differs); work: forward/backward passes per class"
                 if over == "classes" else "\nmean [95% bootstrap interval over seeds, each seed's mean over the classes]; "
                 "work: forward/backward passes per class")
    return "\n".join(lines)


def recognition_verdict(entry: Mapping[str, Any], evaluators: Sequence[str]) -> str:
    """Whether other models recognise a condition's images more or less often than the
    base's (``"worse"``, ``"better"``, ``"mixed"`` or ``"no difference shown"``): from the
    paired top-1 and probability intervals of every evaluator, on a summary entry."""
    signs = {np.sign(entry[ev][m]["diff"]) for ev in evaluators for m in ("top1", "prob") if entry[ev][m]["differs"]}
    if not signs:
        return "no difference shown"
    if signs == {-1.0}:
        return "worse"
    return "better" if signs == {1.0} else "mixed"


_VERDICTS = {
    "worse": "other models recognise its images less often than the base's",
    "better": "other models recognise its images more often than the base's",
    "mixed": "other models recognise its images more often on one measure, less often on another",
    "no difference shown": "no difference shown in how often other models recognise its images",
}
#: What a user should make of a verdict (the condition changes one thing of the base).
_ADVICE = {
    "worse": "So keep the base's setting.",
    "better": "So this change helped here.",
    "mixed": "The evaluators disagree: no advice either way.",
    "no difference shown": "So at this budget the base's setting is not shown to matter (which is not proof it never does).",
}


def _takeaway(report: Mapping[str, Any], summary: Mapping[str, Any], base: str, condition: str) -> str:
    where = f"{base}, {condition_description(report, condition)}"
    entry = summary.get(base, {}).get(condition)
    if entry is None:
        return f"{where}: not measured yet."
    evs = report["evaluators"]
    if condition == "base":
        top1 = ", ".join(f"{_short(ev)} {entry[ev]['top1']['mean']:.2f} {_interval(entry[ev]['top1']['ci_classes'])}"
                         for ev in evs)
        return (f"{where} ({entry['tv']['tv']['n_classes']} classes x seeds {_seeds(entry['seeds'])}): top-1 {top1}; "
                f"TV {entry['tv']['tv']['mean']:.3f}.")
    if "diff" not in entry[evs[0]]["top1"]:
        return f"{where}: measured on seeds {_seeds(entry['seeds'])}, but the base is not yet: no comparison."
    verdict = recognition_verdict(entry, evs)
    differs, same = [], []
    for ev, metric in [(ev, m) for ev in evs for m in ("top1", "prob")] + [("tv", "tv")]:
        (differs if entry[ev][metric]["differs"] else same).append(describe_difference(entry, ev, metric, means=True))
    base_work = summary[base].get("base", {}).get("work")
    cost = (f" It costs {entry['work'] / base_work:.2g}x the base's forward/backward passes."
            if base_work and abs(entry["work"] / base_work - 1) > 0.02 else "")
    n = entry[evs[0]]["top1"]
    lists = (f" Differs: {'; '.join(differs)}." if differs else "") + (
        f" Not shown to differ: {'; '.join(same)}." if same else "")
    return (f"{where} ({n['n_classes']} classes x seeds {_seeds(n['paired_seeds'])}): {_VERDICTS[verdict]}."
            f"{lists}{cost} {_ADVICE[verdict]}")


def describe_difference(entry: Mapping[str, Any], key: str, metric: str, means: bool = False) -> str:
    """One measure of a summary entry against its base, e.g. ``Lite1 top-1 -0.21 [-0.38, -0.06]``
    (the paired difference and its 95 % interval), or with ``means`` ``Lite1 top-1 0.71
    against 0.92 (paired -0.21 [-0.38, -0.06])``; ``key`` is an evaluator or ``"tv"``."""
    s = entry[key][metric]
    name = "TV" if metric == "tv" else f"{_short(key)} {_NAMES[metric]}"
    digits = 3 if metric == "tv" else 2
    paired = f"{s['diff']:+.{digits}f} {_interval(s['ci_diff'], '+', digits)}"
    return f"{name} {s['mean']:.{digits}f} against {s['base_mean']:.{digits}f} (paired {paired})" if means else f"{name} {paired}"


def _interval(ci: Sequence[float], sign: str = "", digits: int = 2) -> str:
    return f"[{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]"


def _seeds(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds))


def ablation_takeaways(results: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                       conditions: Sequence[str] = ("base",), bases: Sequence[str] = ("pixels", "readable")) -> list[str]:
    """One sentence per base and condition, stated from the data: for a condition, whether
    other models recognise its images more or less often than the base's (``worse``,
    ``better``, ``mixed``, or ``no difference shown`` when no paired top-1 or probability
    interval excludes 0), the top-1 of each evaluator against the base's with the paired
    difference and its 95 % interval, TV, and the work relative to the base; for ``"base"``
    its own top-1 with intervals. Conditions without results say "not measured yet"; a
    condition the benchmark does not run on a base is left out for that base."""
    report = ablation_results(results)
    summary = summarize_ablations(report)
    return [_takeaway(report, summary, base, condition) for base in bases for condition in conditions
            if base in report.get("conditions", {}).get(condition, {}).get("bases", [base])]
