"""compare_settings(): the same inversion under several settings, side by side."""

from __future__ import annotations

import pytest
import torch

import piikit
from piikit.interfaces.comparison import SettingsComparison, compare_settings


@pytest.fixture(scope="module")
def runs(tiny_models: dict[str, torch.nn.Module]) -> SettingsComparison:
    return compare_settings(
        tiny_models["cnn"], [1, 2],
        {"plain": {"color_shift": False, "ensemble": 1}, "e=2": {"ensemble": 2}, "no zoom": {"schedule": "center"}},
        "preview", image_size=64, jitter=4, seed=0,
    )


def test_one_result_per_setting_in_order(runs: SettingsComparison) -> None:
    assert runs.names == ["plain", "e=2", "no zoom"]
    assert runs.results["plain"].config.ensemble == 1 and not runs.results["plain"].config.color_shift
    assert runs.results["e=2"].config.ensemble == 2
    assert runs.results["no zoom"].config.schedule == "center"
    # The common override reached every run, and every run used the same seed.
    assert all(r.config.image_size == 64 and r.config.jitter == 4 and r.seed == 0 for r in runs.results.values())
    assert all(t > 0 for t in runs.seconds.values())


def test_images_titles_and_table(runs: SettingsComparison) -> None:
    images = runs.images(1)
    assert images.shape == (3, 3, 64, 64)
    assert torch.equal(images[1], runs.results["e=2"].images[1])
    titles = runs.titles(1)
    assert titles[0].startswith("plain\np=") and titles[0].endswith("s")
    rows = runs.table()
    assert [r["setting"] for r in rows] == runs.names
    assert all(0 <= r["prob"] <= 1 and r["tv"] > 0 and r["steps"] == 30 for r in rows)


def test_show_and_widget(runs: SettingsComparison) -> None:
    fig = runs.show(0)
    assert len([ax for ax in fig.axes if ax.images]) == 3
    assert [ax.get_title() for ax in fig.axes[:3]] == runs.titles(0)
    view = runs.widget(0)
    assert view.selected == ("plain",)
    first = view.image.value
    view.controls[0].value = "no zoom"
    assert view.image.value != first and view.selected == ("no zoom",)


def test_score_summarizes_each_setting(runs: SettingsComparison, tiny_models: dict[str, torch.nn.Module]) -> None:
    scores = runs.score([piikit.load_model(tiny_models["vit"])])
    assert list(scores) == runs.names
    assert all(s["n"] == 2 and 0 <= s["prob"] <= 1 for s in scores.values())


def test_needs_a_setting(tiny_models: dict[str, torch.nn.Module]) -> None:
    with pytest.raises(ValueError, match="at least one setting"):
        compare_settings(tiny_models["cnn"], 1, {}, "preview")


@pytest.mark.parametrize(("old", "new"), [("compare", "compare_settings"), ("Comparison", "SettingsComparison"),
                                          ("attribute_compare", "attribute_models"),
                                          ("plot_comparison", "plot_model_attributions")])
def test_old_names_still_work_for_one_release_with_a_warning(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old} is now called {new}"):
        assert getattr(piikit, old) is getattr(piikit, new)
    module = __import__(piikit._EXPORTS[new], fromlist=[old])
    with pytest.warns(DeprecationWarning, match=f"{old} is now called {new}"):
        assert getattr(module, old) is getattr(piikit, new)
    with pytest.raises(AttributeError):
        getattr(module, old + "_nope")
