"""The PII paper's claims about its parts, each checked against the ablation benchmark.

>>> print("\\n".join(paper_claim_takeaways(claims=["colorshift"])))  # doctest: +SKIP

A claim is what the paper says of one part, where it says it, and the benchmark conditions
that test it, each with the direction the claim predicts against the base: ``"worse"`` (other
models recognise the condition's images less often), ``"better"``, or ``"not worse"`` (no
difference or better). The direction found is :mod:`~piikit.analysis.ablations`' verdict:
paired per-class differences of top-1 and target probability on every evaluator, a
difference counting only where its 95 % bootstrap interval excludes 0.

On each base a claim *reproduces* when every measured condition goes the predicted way,
*does not reproduce* when none does, and *partly* otherwise. The paper shows each part on
one class of a ResNet-50 at 7 x 400 steps and e = 32; the benchmark asks the same questions
of 16 random classes of EfficientNet-Lite0 at a CPU budget, so a claim that does not
reproduce here is a finding about that budget, not a refutation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from piikit.analysis.ablations import (ablation_results, condition_description, describe_difference, planned_on,
                                       recognition_verdict, summarize_ablations)

__all__ = ["PaperClaim", "PAPER_CLAIMS", "check_claim", "paper_claim_takeaways"]

_MATCHES = {"worse": {"worse"}, "better": {"better"}, "not worse": {"better", "no difference shown"}}
_FOUND = {"worse": "loses", "better": "wins", "mixed": "mixed", "no difference shown": "no difference shown"}


@dataclass(frozen=True)
class PaperClaim:
    """One claim of the paper: ``source`` (its section and figure), ``statement`` (in our
    words), ``expect`` (benchmark condition -> predicted direction against the base) and
    ``advice`` (what a user should do when the claim reproduces, partly, or not)."""

    source: str
    statement: str
    expect: Mapping[str, str]
    advice: tuple[str, str, str]


PAPER_CLAIMS: dict[str, PaperClaim] = {
    "zoom_centering": PaperClaim(
        "§3.1 and Fig. 6 (bottom)", "zoom and centering together beat either one alone and neither",
        {"zoom_only": "worse", "center_only": "worse", "no_zoom_center": "worse", "no_zoom_center_equal_work": "worse"},
        ("Keep both.", "Keep zoom and centering: dropping them lost where marked; the rest is not shown to matter "
         "at this budget.",
         "At this budget the schedule is not shown to matter.")),
    "colorshift": PaperClaim(
        "§3.2 and Fig. 6 (bottom)", "ColorShift puts more of the class into the image: without it every schedule loses",
        {"no_colorshift": "worse", "zoom_only_no_colorshift": "worse", "center_only_no_colorshift": "worse",
         "no_zoom_center_no_colorshift": "worse"},
        ("Keep ColorShift: it is free.", "Keep ColorShift where it was shown to matter.",
         "At this budget ColorShift is not shown to matter.")),
    "tv_optional": PaperClaim(
        "§3.2 and Fig. 4", "with ColorShift no TV weight is needed (none does as well as any), while without "
        "ColorShift no TV weight makes up for it",
        {"tv_0.01": "not worse", "tv_0.1": "not worse", "tv_1": "not worse", "tv_0.01_no_colorshift": "worse",
         "tv_0.1_no_colorshift": "worse", "tv_1_no_colorshift": "worse"},
        ("Keep ColorShift; a TV weight is then a matter of taste (it smooths).",
         "Keep ColorShift; choose the TV weight by the rows above.", "Here the TV weight matters more than ColorShift.")),
    "ensembling": PaperClaim(
        "§3.3, Fig. 5 and Fig. 6 (middle)", "a larger ensemble of ColorShifted copies gives (slightly) better images",
        {"ensemble_1": "worse", "ensemble_2": "worse", "ensemble_4": "better", "ensemble_8": "better"},
        ("Use the largest ensemble your budget allows.",
         "Use at least the base's ensemble; past it the gain is not shown, and each copy costs a pass.",
         "At this budget the ensemble size is not shown to matter: use the smallest.")),
}


def _evidence(entry: Mapping[str, Any], evaluators: Sequence[str], verdict: str) -> str:
    """At most two paired differences behind a verdict: top-1 before probability among the
    ones that decided it; with no difference, each evaluator's top-1, or its probability
    where the base's top-1 is at the ceiling and cannot move."""
    keys = [(ev, m) for m in ("top1", "prob") for ev in evaluators]
    decided = [(ev, m) for ev, m in keys if entry[ev][m]["differs"]] if verdict != "no difference shown" else []
    shown = decided[:2] or [(ev, "prob" if entry[ev]["top1"]["base_mean"] >= 0.99 else "top1") for ev in evaluators]
    return "; ".join(describe_difference(entry, ev, m) for ev, m in shown)


def check_claim(results: str | os.PathLike[str] | Mapping[str, Any] | None, claim: str | PaperClaim,
                base: str) -> dict[str, Any]:
    """On one base: ``outcome`` (``"reproduces"``, ``"partly"``, ``"does not reproduce"``, or
    ``"not measured yet"``) and per condition the benchmark plans there, ``expected``,
    ``found`` (the verdict, or None before it is measured), ``met`` and ``evidence``."""
    report = ablation_results(results)
    spec = PAPER_CLAIMS[claim] if isinstance(claim, str) else claim
    rows = summarize_ablations(report).get(base, {})
    evaluators = report["evaluators"]
    conditions = []
    for condition, expected in spec.expect.items():
        if not planned_on(report, base, condition):
            continue
        entry = rows.get(condition)
        measured = entry is not None and "diff" in entry[evaluators[0]]["top1"]
        found = recognition_verdict(entry, evaluators) if measured else None
        conditions.append({"condition": condition, "expected": expected, "found": found,
                           "met": found in _MATCHES[expected] if found else None,
                           "evidence": _evidence(entry, evaluators, found) if found else ""})
    met = [c["met"] for c in conditions if c["found"]]
    outcome = ("not measured yet" if not met else "reproduces" if all(met)
               else "does not reproduce" if not any(met) else "partly")
    return {"claim": spec, "base": base, "outcome": outcome, "conditions": conditions}


def _claim_line(report: Mapping[str, Any], check: Mapping[str, Any]) -> str:
    parts = {True: [], False: [], None: []}
    for c in check["conditions"]:
        what = condition_description(report, c["condition"])
        parts[c["met"]].append(f"{what}: {_FOUND[c['found']]} ({c['evidence']})" if c["found"] else what)
    text = f"{check['base']}: {check['outcome']}."
    for met, label in ((True, "As predicted"), (False, "Not as predicted"), (None, "Not measured yet")):
        if parts[met]:
            text += f" {label}: " + "; ".join(parts[met]) + "."
    advice = dict(zip(("reproduces", "partly", "does not reproduce"), check["claim"].advice))
    return text + (f" {advice[check['outcome']]}" if check["outcome"] in advice else "")


def paper_claim_takeaways(results: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                          claims: Sequence[str] = tuple(PAPER_CLAIMS),
                          bases: Sequence[str] = ("pixels", "readable")) -> list[str]:
    """Per claim, a header line (the paper's words as we read them, and where it says them)
    and one line per base that tests it: whether it reproduces, which conditions went the
    predicted way with their paired differences and 95 % intervals, and what to do about it."""
    report = ablation_results(results)
    lines = []
    for name in claims:
        spec = PAPER_CLAIMS[name]
        checks = [check_claim(report, spec, base) for base in bases]
        checks = [c for c in checks if c["conditions"]]
        if checks:
            lines.append(f"The paper, {spec.source}: {spec.statement}.")
            lines += ["  " + _claim_line(report, c) for c in checks]
    return lines
