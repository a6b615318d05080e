"""The ablation benchmark (``benchmarks/ablations.py``, ``benchmarks/ablations_gpu.py``) and
the widget that shows its saved images (:func:`piikit.widgets.condition_grid`).

The statistics and the widget use a small results folder in the benchmark's own format
(written by its own functions); the GPU script runs for real on the CPU at a tiny budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import piikit
from piikit.engine.schedule import StageSchedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import ablations  # noqa: E402
import ablations_gpu  # noqa: E402
from piikit.interfaces.widgets import ablation_thumbnails, condition_grid  # noqa: E402

EVALUATORS = ["efficientnet_lite1", "efficientnet_lite2"]


def _unit(base: str, condition: str, seed: int, classes: list[int], ranks: list[int], images: torch.Tensor,
          folder: Path) -> dict:
    thumb = Path("thumbs") / base / condition / f"seed{seed}.jpg"
    (folder / thumb).parent.mkdir(parents=True, exist_ok=True)
    ablations.write_atomic(folder / thumb, ablations.thumbnail_strip(images))
    return {"base": base, "condition": condition, "seed": seed, "work": 1.0, "s_per_class": 1.0,
            "thumbs": thumb.as_posix(),
            "images": [{"target": c, "tv": 0.1 + 0.01 * i, "prob": {e: 1.0 / r for e in EVALUATORS},
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
    report["summary"] = ablations.summarize(report)
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
    assert "no_colorshift" in ablations.format_tables({**json.loads((results / "ablations.json").read_text())})


def test_bootstrap_interval_brackets_the_mean_and_resamples_the_chosen_axis() -> None:
    values = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]).numpy()  # seeds x classes
    low, high = ablations.bootstrap(values, axis=1)
    assert low < values.mean() < high and 0 <= low and high <= 1
    constant_over_seeds = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).numpy()
    assert ablations.bootstrap(constant_over_seeds, axis=0) == [0.5, 0.5]


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
