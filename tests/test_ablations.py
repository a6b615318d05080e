"""The ablation benchmark (``benchmarks/ablations.py``, ``benchmarks/ablations_gpu.py``), the
package's reading of its results (:mod:`piikit.analysis.ablations`, the figures) and the widget
that shows its saved images (:func:`piikit.widgets.condition_grid`).

The statistics and the widget use a small results folder in the benchmark's own format
(written by its own functions), and the results shipped with piikit, whatever units they hold;
the GPU script runs for real on the CPU at a tiny budget."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import piikit
from piikit.engine.schedule import StageSchedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import ablations  # noqa: E402
import ablations_gpu  # noqa: E402
from piikit.analysis.ablations import (ablation_table, ablation_takeaways, ablation_thumbnails,  # noqa: E402
                                      bootstrap_interval, summarize_ablations)
from piikit.analysis.claims import PAPER_CLAIMS  # noqa: E402
from piikit.interfaces.widgets import condition_grid  # noqa: E402

EVALUATORS = ["efficientnet_lite1", "efficientnet_lite2"]


def _unit(base: str, condition: str, seed: int, classes: list[int], ranks: list[int], images: torch.Tensor,
          folder: Path, probs: list[float] | None = None) -> dict:
    thumb = Path("thumbs") / base / condition / f"seed{seed}.jpg"
    (folder / thumb).parent.mkdir(parents=True, exist_ok=True)
    ablations.write_atomic(folder / thumb, ablations.thumbnail_strip(images))
    return {"base": base, "condition": condition, "seed": seed, "work": 1.0, "s_per_class": 1.0,
            "thumbs": thumb.as_posix(),
            "images": [{"target": c, "tv": 0.1 + 0.01 * i,
                        "prob": {e: probs[i] if probs else 1.0 / r for e in EVALUATORS},
                        "rank": {e: r for e in EVALUATORS}} for i, (c, r) in enumerate(zip(classes, ranks))]}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Base and two conditions on 6 classes x 2 seeds: ``same`` scores as the base, ``worse``
    loses top-1 on every class; ``worse`` has only seed 0. Each unit's images are one flat
    colour per condition, so a grid shows which unit it is."""
    classes = [1, 2, 3, 4, 5, 6]
    report = {"model": "efficientnet_lite0", "evaluators": EVALUATORS, "size": 224, "draw_seed": 28,
              "classes": classes, "bases": {"pixels": {"description": "pixels", "preset": "fast"}},
              "conditions": {c: {"description": d, "bases": list(b)} for c, (d, _, b) in ablations.CONDITIONS.items()},
              "units": {}}
    colours = {"base": 0.2, "no_jitter": 0.5, "no_colorshift": 0.8}
    for condition, ranks, seeds in (("base", [1] * 6, (0, 1)), ("no_jitter", [1] * 6, (0, 1)),
                                    ("no_colorshift", [7] * 6, (0,))):
        for seed in seeds:
            images = torch.full((6, 3, 40, 40), colours[condition] + 0.1 * seed)
            report["units"][f"pixels/{condition}/{seed}"] = _unit("pixels", condition, seed, classes, ranks, images,
                                                                  tmp_path)
    report["summary"] = summarize_ablations(report)
    (tmp_path / "ablations.json").write_text(json.dumps(report))
    return tmp_path


def test_summary_marks_only_a_real_difference(results: Path) -> None:
    summary = json.loads((results / "ablations.json").read_text())["summary"]["pixels"]
    base, same, worse = summary["base"], summary["no_jitter"], summary["no_colorshift"]
    assert base["efficientnet_lite1"]["top1"]["mean"] == 1.0 and "diff" not in base["efficientnet_lite1"]["top1"]
    assert same["efficientnet_lite1"]["top1"]["diff"] == 0.0 and not same["efficientnet_lite1"]["top1"]["differs"]
    top1 = worse["efficientnet_lite2"]["top1"]
    assert top1["diff"] == -1.0 and top1["differs"] and top1["paired_seeds"] == [0]
    assert worse["seeds"] == [0] and top1["n_classes"] == 6
    table = ablation_table(results, "pixels", ["base", "no_colorshift", "ensemble_1"])
    assert "-1.00 [-1.00,-1.00]*" in table and "ensemble_1                    not measured yet" in table
    by_seed = ablation_table(results, "pixels", ["base", "no_colorshift"], over="seeds")
    assert "over seeds" in by_seed and "- base (paired)" not in by_seed and "0.00 [0.00,0.00]" in by_seed
    with pytest.raises(ValueError, match="over must be"):
        ablation_table(results, over="runs")


def _flip_report(tmp_path: Path, losses: int, loser: str = "no_jitter") -> dict:
    """Base and "no_jitter" on 16 classes x 3 seeds; ``loser`` (one of the two) loses top-1
    (rank 1 -> 9) and probability (0.9 -> 0.1) on the first ``losses`` classes of every seed."""
    classes = list(range(16))
    report = {"evaluators": EVALUATORS, "classes": classes, "bases": {"pixels": {"description": "px"}},
              "conditions": {c: {"description": d, "bases": list(b)} for c, (d, _, b) in ablations.CONDITIONS.items()},
              "units": {}}
    images = torch.zeros(16, 3, 8, 8)
    for seed in range(3):
        for condition in ("base", "no_jitter"):
            lost = losses if condition == loser else 0
            report["units"][f"pixels/{condition}/{seed}"] = _unit(
                "pixels", condition, seed, classes, [9] * lost + [1] * (16 - lost), images, tmp_path,
                [0.1] * lost + [0.9] * (16 - lost))
    return report


def test_verdict_flips_between_one_lost_class_and_five(tmp_path: Path) -> None:
    one, five = _flip_report(tmp_path, 1), _flip_report(tmp_path, 5)
    top1_one = summarize_ablations(one)["pixels"]["no_jitter"]["efficientnet_lite1"]["top1"]
    top1_five = summarize_ablations(five)["pixels"]["no_jitter"]["efficientnet_lite1"]["top1"]
    assert top1_one["diff"] == -1 / 16 and not top1_one["differs"] and not top1_one["apart"]
    assert top1_five["diff"] == -5 / 16 and top1_five["differs"] and top1_five["ci_diff"][1] < 0
    assert top1_five["n_seeds"] == 3 and top1_five["paired_seeds"] == [0, 1, 2]
    said_one = ablation_takeaways(one, ["no_jitter", "ensemble_1"], bases=["pixels"])
    said_five = ablation_takeaways(five, ["no_jitter"], bases=["pixels"])[0]
    assert "no difference shown" in said_one[0] and "not shown to matter" in said_one[0]
    assert said_one[1] == "pixels, ensemble of 1: not measured yet."
    assert "less often than the base's" in said_five and "keep the base's setting" in said_five
    assert "Lite1 top-1 0.69 against 1.00 (paired -0.31 [" in said_five
    better = _flip_report(tmp_path, 5, loser="base")
    assert "more often than the base's" in ablation_takeaways(better, ["no_jitter"], bases=["pixels"])[0]


def test_a_row_on_fewer_seeds_is_held_against_the_base_on_those_seeds(tmp_path: Path) -> None:
    report = _flip_report(tmp_path, 0)
    images = torch.zeros(16, 3, 8, 8)
    for seed in (1, 2):  # the base fails half its classes on the seeds the condition lacks
        report["units"][f"pixels/base/{seed}"] = _unit("pixels", "base", seed, list(range(16)), [9] * 8 + [1] * 8,
                                                       images, tmp_path)
        del report["units"][f"pixels/no_jitter/{seed}"]
    rows = summarize_ablations(report)["pixels"]
    assert rows["base"]["efficientnet_lite1"]["top1"]["ci_classes"][0] < 0.9
    assert rows["no_jitter"]["efficientnet_lite1"]["top1"]["base_ci"] == [1.0, 1.0]
    fig = piikit.plot_ablations({"pixels": rows}, ["base", "no_jitter"], bases=["pixels"],
                                metrics=["top1"], report=report)
    bands = [c.get_paths()[0].get_extents() for c in fig.axes[0].collections if c.get_alpha() == 0.12]
    assert sorted((round(b.x0, 2), round(b.x1, 2)) for b in bands)[-1] == (1.0, 1.0)
    assert min(b.x0 for b in bands) < 0.9


def _claims_report(tmp_path: Path, outcomes: dict[str, str], base: str = "pixels") -> dict:
    """The base and the given conditions on 16 classes x 3 seeds. The base is recognised on
    classes 0-9 and not on 10-15; a condition is ``"same"``, ``"worse"`` (also lost on 0-4)
    or ``"better"`` (recognised on 10-15 too)."""
    classes = list(range(16))
    good = {"same": range(10), "worse": range(5, 10), "better": range(16)}
    report = {"evaluators": EVALUATORS, "classes": classes, "bases": {base: {"description": base}},
              "conditions": {c: {"description": d, "bases": list(b)} for c, (d, _, b) in ablations.CONDITIONS.items()},
              "units": {}}
    for condition, outcome in {"base": "same", **outcomes}.items():
        ranks = [1 if c in good[outcome] else 9 for c in classes]
        for seed in range(3):
            report["units"][f"{base}/{condition}/{seed}"] = _unit(
                base, condition, seed, classes, ranks, torch.zeros(16, 3, 8, 8), tmp_path,
                [0.9 if r == 1 else 0.1 for r in ranks])
    return report


def test_a_paper_claim_reproduces_only_where_every_condition_goes_its_way(tmp_path: Path) -> None:
    as_paper = {"ensemble_1": "worse", "ensemble_2": "worse", "ensemble_8": "better"}
    check = piikit.check_claim(_claims_report(tmp_path, as_paper), "ensembling", "pixels")
    assert check["outcome"] == "reproduces" and all(c["met"] for c in check["conditions"])
    # the pixel base is the ensemble of 4, so that condition is not part of the check there
    assert [c["condition"] for c in check["conditions"]] == ["ensemble_1", "ensemble_2", "ensemble_8"]
    flat = _claims_report(tmp_path, {**as_paper, "ensemble_8": "same"})
    assert piikit.check_claim(flat, "ensembling", "pixels")["outcome"] == "partly"
    nothing = _claims_report(tmp_path, dict.fromkeys(as_paper, "same"))
    assert piikit.check_claim(nothing, "ensembling", "pixels")["outcome"] == "does not reproduce"
    line = piikit.paper_claim_takeaways(flat, ["ensembling"], bases=["pixels"])[1]
    assert line.startswith("  pixels: partly. As predicted: ensemble of 1: loses (Lite1 top-1 -0.31 [")
    assert "Not as predicted: ensemble of 8: no difference shown (Lite1 top-1 +0.00 [+0.00, +0.00]" in line
    # "not worse" holds for no difference and for a gain, not for a loss
    tv = {"tv_0.01": "same", "tv_0.1": "better", "tv_1": "worse"}
    rows = {c["condition"]: c["met"] for c in piikit.check_claim(_claims_report(tmp_path, tv), "tv_optional",
                                                                  "pixels")["conditions"]}
    assert rows == {"tv_0.01": True, "tv_0.1": True, "tv_1": False, "tv_0.01_no_colorshift": None,
                    "tv_0.1_no_colorshift": None, "tv_1_no_colorshift": None}
    said = piikit.paper_claim_takeaways(_claims_report(tmp_path, tv), ["tv_optional"], bases=["pixels"])[1]
    assert "Not measured yet: TV weight 0.01, ColorShift off (Fig. 4)" in said
    # the readable base plans ensemble 4; with only the base run nothing is decided yet
    empty = _claims_report(tmp_path, {}, base="readable")
    check = piikit.check_claim(empty, "ensembling", "readable")
    assert check["outcome"] == "not measured yet" and "ensemble_4" in [c["condition"] for c in check["conditions"]]


def test_the_shipped_results_read_whatever_units_they_hold() -> None:
    report = piikit.ablation_results()
    summary = piikit.summarize_ablations(report)
    done = {tuple(k.split("/")[:2]) for k in report["units"]}
    assert ("pixels", "base") in done and ("readable", "base") in done
    assert {(b, c) for b, rows in summary.items() for c in rows} == done
    for (base, condition) in done:
        stats = summary[base][condition]["efficientnet_lite1"]["top1"]
        assert stats["n_classes"] == 16 and stats["ci_classes"][0] <= stats["mean"] <= stats["ci_classes"][1]
        assert ("diff" in stats) == (condition != "base")
    lines = piikit.ablation_takeaways(report, list(report["conditions"]))
    assert len(lines) == sum(len(c["bases"]) for c in report["conditions"].values())
    assert all(line.startswith(("pixels, ", "readable, ")) for line in lines)
    unmeasured = [c for c in report["conditions"] if ("pixels", c) not in done and "pixels" in report["conditions"][c]["bases"]]
    assert all(f"pixels, {report['conditions'][c]['description']}: not measured yet." in lines for c in unmeasured)
    table = piikit.ablation_table(report, "readable")
    assert "readable" in table and "base " in table
    images = piikit.ablation_images(report, "pixels", ["base", "no_such_unit"])
    assert images["base"].shape == (16, 3, ablations.THUMB, ablations.THUMB) and images["no_such_unit"] is None
    # the pixel base is the ensemble of 4: no row for a unit the benchmark never runs there
    assert list(piikit.ablation_images(report, "pixels", ["base", "ensemble_4"])) == ["base"]
    fig = piikit.plot_ablation_grid(images, report["labels"])
    assert len(fig.axes) == 2 * 16
    said = piikit.paper_claim_takeaways(report)
    assert said[0].startswith("The paper, §3.1") and len(said) == len(PAPER_CLAIMS) + 7  # TV: pixels only
    assert all(line.startswith(("  pixels: ", "  readable: ", "The paper, ")) for line in said)
    bars = piikit.plot_ablations(summary, ["base", "no_colorshift", "no_such_unit"])
    assert len(bars.axes) == 2 * 3 and any("not measured yet" in t.get_text() for t in bars.axes[0].texts)
    # the Fig. 4 sweep runs on pixels only: the readable panels have no line for it
    planned = piikit.plot_ablations(summary, ["base", "tv_0.1", "no_colorshift"], report=report)
    assert [t.get_text() for t in planned.axes[0].get_yticklabels()] == ["base", "tv_0.1", "no_colorshift"]
    assert [t.get_text() for t in planned.axes[3].get_yticklabels()] == ["base", "no_colorshift"]


def test_bootstrap_interval_brackets_the_mean_and_resamples_the_chosen_axis() -> None:
    values = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]).numpy()  # seeds x classes
    low, high = bootstrap_interval(values, axis=1)
    assert low < values.mean() < high and 0 <= low and high <= 1
    constant_over_seeds = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).numpy()
    assert bootstrap_interval(constant_over_seeds, axis=0) == [0.5, 0.5]


def test_plan_puts_the_main_claims_first_and_lists_every_unit_once() -> None:
    units = ablations.plan([0, 1, 2])
    assert units[:4] == [("pixels", "base", 0), ("readable", "base", 0), ("readable", "no_colorshift", 0),
                         ("pixels", "no_colorshift", 0)]
    assert len(units) == len(set(units))
    first = units[: 3 * 2 * len(ablations.FIRST)]
    assert {c for _, c, _ in first} == set(ablations.FIRST)
    assert ("pixels", "tv_1_no_colorshift", 2) in units and ("readable", "tv_1", 0) not in units
    assert all(b != "paper" for b, _, _ in units)


@pytest.mark.parametrize("base", ["pixels", "readable"])
def test_equal_work_condition_does_the_base_work_and_sizes_follow_the_schedule(base: str) -> None:
    config = ablations.condition_config(base, "base")
    assert ablations.stage_sizes(config, 224) == list(StageSchedule(224, config.stages).sizes)
    equal = ablations.condition_config(base, "no_zoom_center_equal_work")
    assert equal.schedule == "none" and equal.steps_per_stage < config.steps_per_stage
    assert abs(ablations.work(equal, 224) / ablations.work(config, 224) - 1) < 0.05
    assert ablations.work(ablations.condition_config(base, "no_zoom_center"), 224) > 1.5 * ablations.work(config, 224)


def test_class_draw_is_fixed_and_random() -> None:
    classes = ablations.draw_classes()
    assert classes == sorted(classes) and len(set(classes)) == 16 and classes == ablations.draw_classes()
    assert classes[:3] == [24, 132, 177]  # the draw the committed results used (seed 28)


def test_condition_grid_switches_between_saved_units_without_optimizing(results: Path) -> None:
    view = condition_grid(results)
    assert view.condition.options == ("base", "no_colorshift", "no_jitter")  # run, in the benchmark's order
    assert view.selected == ("pixels", "base", 0) and view.image.value[:2] == b"\xff\xd8"  # a JPEG
    first = view.image.value
    view.seed.value = 1
    assert view.image.value != first
    view.condition.value = "no_colorshift"  # it has only seed 0: the seed follows
    assert view.seed.options == (("0", 0),) and view.selected == ("pixels", "no_colorshift", 0)
    assert "ColorShift off" in view.caption.value and "differs" in view.stats.value
    view.condition.value = "no_jitter"
    assert "differs" not in view.stats.value and "+0.00" in view.stats.value
    only = condition_grid(results / "ablations.json", base="pixels", conditions=["no_jitter", "base"])
    assert only.condition.options == ("no_jitter", "base")
    with pytest.raises(ValueError, match="unknown base 'pixel'; choose one of pixels"):
        condition_grid(results, base="pixel")
    with pytest.raises(ValueError, match="unknown condition.*no_such"):
        condition_grid(results, conditions=["no_such"])
    with pytest.raises(FileNotFoundError, match="no ablation results"):
        condition_grid(results / "missing")


def test_thumbnails_come_back_as_saved(results: Path) -> None:
    tiles = ablation_thumbnails(results, "pixels", "no_colorshift", 0)
    assert tiles.shape == (6, 3, ablations.THUMB, ablations.THUMB)
    assert torch.allclose(tiles, torch.full_like(tiles, 0.8), atol=0.02)  # JPEG keeps a flat colour
    with pytest.raises(KeyError, match="pixels/no_colorshift"):
        ablation_thumbnails(results, "pixels", "no_colorshift", 1)


def test_merge_adds_a_side_by_side_runs_new_units_with_their_images(results: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(results, other)
    report = json.loads((other / "ablations.json").read_text())
    report["units"]["pixels/no_colorshift/1"] = _unit("pixels", "no_colorshift", 1, report["classes"], [7] * 6,
                                                      torch.full((6, 3, 40, 40), 0.3), other)
    report["units"]["pixels/base/0"]["images"][0]["rank"] = {e: 9 for e in EVALUATORS}  # a second copy: not taken
    report["runs"] = [{"started": "2026-12-02T10:00:00+00:00"}]
    (other / "ablations.json").write_text(json.dumps(report))

    assert ablations.merge_results(results, [other]) == ["pixels/no_colorshift/1"]
    merged = json.loads((results / "ablations.json").read_text())
    assert merged["units"]["pixels/base/0"]["images"][0]["rank"]["efficientnet_lite1"] == 1
    assert merged["summary"]["pixels"]["no_colorshift"]["seeds"] == [0, 1]
    assert [r["started"] for r in merged["runs"]] == ["2026-12-02T10:00:00+00:00"]
    tiles = ablation_thumbnails(results, "pixels", "no_colorshift", 1)
    assert torch.allclose(tiles, torch.full_like(tiles, 0.3), atol=0.02)
    assert ablations.merge_results(results, [other]) == []  # merging again adds nothing

    report["classes"] = [1, 2, 3, 4, 5, 7]
    (other / "ablations.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match="other classes"):
        ablations.merge_results(results, [other])


def test_deadline_stops_a_run_and_says_how_far_it_got() -> None:
    stop = ablations_gpu.Deadline(at=0.0)
    state = piikit.StepState(stage=0, step=1, global_step=3, total_steps=10, image=torch.zeros(1), loss=torch.zeros(()),
                             prob=torch.zeros(1))
    stop(state)
    assert stop.interrupted and stop.steps == 3 and state.stop_requested == "deadline"
    later = ablations_gpu.Deadline(at=float("inf"))
    later(state)
    assert not later.interrupted


def test_gpu_script_runs_fig6_grid_on_the_cpu_at_a_tiny_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["ablations_gpu.py", "--device", "cpu", "--steps", "1", "--ensemble", "2", "--size", "32",
            "--n-classes", "2", "--jobs", "1", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    ablations_gpu.main()
    report = json.loads((tmp_path / "ablations.json").read_text())
    assert report["classes"] == ablations.draw_classes()[::8]
    assert sorted(report["units"]) == sorted(f"paper/{c}/0" for c in ablations_gpu.CELLS)
    for key, unit in report["units"].items():
        config = unit["config"]
        assert (config["steps_per_stage"], config["ensemble"], config["lr"], config["stages"]) == (1, 2, 0.01, 7)
        assert unit["steps_done"] == unit["total_steps"] == 7 and not unit["interrupted"] and config["fold_bn"]
        assert len(unit["images"]) == 2
        tiles = ablation_thumbnails(tmp_path, "paper", unit["condition"], 0)
        assert tiles.shape == (2, 3, ablations.THUMB, ablations.THUMB)
    assert report["units"]["paper/zoom_only_no_colorshift/0"]["config"]["color_shift"] is False
    assert report["units"]["paper/center_only/0"]["config"]["schedule"] == "center"
    assert "diff" in report["summary"]["paper"]["no_zoom_center"]["efficientnet_lite1"]["top1"]
    finished = {k: u["finished"] for k, u in report["units"].items()}
    ablations_gpu.main()  # a rerun skips what is done
    again = json.loads((tmp_path / "ablations.json").read_text())
    assert {k: u["finished"] for k, u in again["units"].items()} == finished
