"""The notebook widgets, driven as a user would: set values, click buttons, read the state.

ipywidgets works without a kernel (an ``Output`` would capture nothing here, which is why
the explorer shows everything through ``Image`` and ``HTML`` widgets). Runs use the tiny
random ``test_resnet`` / ``test_vit`` and a few steps, so each test takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import piikit
from piikit.interfaces.explorer import EXPLORER_PRESET, KNOB_GROUPS, Explorer, stages_method
from piikit.interfaces.widgets import image_png, result_grid, result_slider

TIMEOUT = 120  # seconds a worker may take before a test gives up on it


def test_import_piikit_does_not_import_ipywidgets() -> None:
    code = "import sys, piikit; assert 'ipywidgets' not in sys.modules; piikit.widgets.result_slider; piikit.explore; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_result_slider_flips_between_items() -> None:
    red, blue = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    red[0], blue[2] = 1, 1
    view = result_slider([red, blue], ["red", "blue"], description="colour")
    assert view.image.value == image_png(red)
    view.controls[0].value = "blue"
    assert view.image.value == image_png(blue)
    assert view.caption.value == "blue"
    with pytest.raises(ValueError, match="one label per item"):
        result_slider([red, blue], ["only one"])


def test_result_grid_has_one_control_per_setting_and_marks_missing_cells() -> None:
    images = {("zoom", True): torch.rand(3, 8, 8), ("zoom", False): torch.rand(3, 8, 8),
              ("none", True): torch.rand(3, 8, 8)}
    view = result_grid(images, ["schedule", "ColorShift"], control="dropdown")
    assert [c.description for c in view.controls] == ["schedule", "ColorShift"]
    view.controls[1].value = False
    assert view.image.value == image_png(images[("zoom", False)])
    shown = view.image.value
    view.controls[0].value = "none"  # (none, False) was never computed
    assert "not computed" in view.caption.value and view.image.value == shown


@pytest.fixture
def make(device: torch.device):
    """An explorer on a tiny model, 3 steps per stage, on the suite's ``--device``."""
    def make(model: nn.Module, **kwargs) -> Explorer:
        explorer = Explorer("tiny", "1: goldfish", models={"tiny": model}, device=device, **{"preset": "preview", **kwargs})
        explorer.knobs["steps_per_stage"].value = 3
        return explorer

    return make


def _finish(explorer: Explorer) -> None:
    assert explorer.wait(TIMEOUT), "the explorer's worker did not finish"


def test_preset_fills_the_knobs_and_knobs_override_it(make, tiny_cnn: nn.Module) -> None:
    explorer = make(tiny_cnn)
    explorer.preset.value = "fast"
    assert explorer.knobs["steps_per_stage"].value == piikit.PRESETS["fast"].steps_per_stage
    assert explorer.knobs["ensemble"].value == piikit.PRESETS["fast"].ensemble
    for name, preset in piikit.PRESETS.items():  # untouched knobs give the preset exactly
        explorer.preset.value = name
        assert explorer.config() == preset, name
    explorer.preset.value = "fast"
    explorer.knobs["color_shift"].value = False
    explorer.knobs["schedule"].value = "zoom"
    config = explorer.config()
    assert (config.color_shift, config.schedule, config.stages) == (False, "zoom", 7)


def test_the_explorer_starts_on_its_own_readable_preset() -> None:
    # Not "fast" (pixel noise, a minute per class on a CPU): the first Run should show a
    # readable image within seconds, so the default is the Fourier image with grey borders.
    import inspect

    assert inspect.signature(piikit.explore).parameters["preset"].default == EXPLORER_PRESET == "glance"
    assert inspect.signature(Explorer).parameters["preset"].default == EXPLORER_PRESET
    glance = piikit.PRESETS[EXPLORER_PRESET]
    assert (glance.param, glance.border) == ("fourier", "grey")
    assert glance.total_steps < piikit.PRESETS["clear"].total_steps
    explorer = Explorer()
    assert explorer.preset.value == EXPLORER_PRESET and explorer.config() == glance
    assert (explorer.knobs["param"].value, explorer.knobs["border"].value) == ("fourier", "grey")


def test_every_knob_is_in_a_tab_and_the_settings_without_one_are_speed_only() -> None:
    explorer = Explorer("efficientnet_lite0", preset="preview")
    grouped = [name for names in KNOB_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(explorer.knobs) and len(grouped) == len(set(grouped))
    fields = {field.name for field in dataclasses.fields(piikit.InversionConfig)}
    assert set(explorer.knobs) <= fields
    assert fields - set(explorer.knobs) == {"betas", "amp", "channels_last", "compile_model", "micro_batch", "fold_bn"}
    assert len(explorer.tabs.children) == len(KNOB_GROUPS)


def test_new_knobs_change_the_config_a_run_uses(make, tiny_cnn: nn.Module) -> None:
    # Parameterization, border fill, flips, zoom, rotation, image size, lr schedule, L2:
    # each knob turned away from the preset's value must reach the run's config.
    explorer = make(tiny_cnn)
    explorer.knobs["stages"].value = 2
    explorer.knobs["steps_per_stage"].value = 2
    turned = {"param": "fourier", "border": "grey", "flip": 0.5, "zoom_jitter": 0.2, "rotate": 15.0,
              "image_size": 64, "lr_schedule": "constant", "l2_weight": 0.01}
    preset = piikit.PRESETS["preview"]
    for name, value in turned.items():
        assert getattr(preset, name) != value, name  # a real change
        explorer.knobs[name].value = value
    explorer.run_button.click()
    _finish(explorer)
    config = explorer.result.config
    assert {name: getattr(config, name) for name in turned} == turned, explorer.status.value
    assert explorer.result.images.shape[-1] == 64 and not explorer.result.interrupted
    # Back to the model's own size: "the model's own" is image_size=None, not "keep" the 64 above.
    explorer.preset.value = "glance"
    explorer.knobs["image_size"].value = 160
    assert explorer.config().image_size == 160
    explorer.knobs["image_size"].value = 0
    assert explorer.config().image_size is None


def test_an_image_size_the_list_lacks_is_offered(make, tiny_cnn: nn.Module) -> None:
    explorer = make(tiny_cnn, image_size=100)
    assert explorer.knobs["image_size"].value == 100 and explorer.config().image_size == 100
    assert ("the model's own", 0) in explorer.knobs["image_size"].options


def test_keyword_settings_start_the_knobs_and_unknown_ones_fail(make, tiny_cnn: nn.Module) -> None:
    explorer = make(tiny_cnn, ensemble=100, micro_batch=1)
    assert explorer.knobs["ensemble"].value == 100  # beyond the slider's usual range, not clipped
    assert (explorer.config().ensemble, explorer.config().micro_batch) == (100, 1)
    with pytest.raises(TypeError, match="did you mean ensemble"):
        make(tiny_cnn, ensembel=5)


def test_run_updates_image_stages_curve_and_history(make, tiny_cnn: nn.Module) -> None:
    explorer = make(tiny_cnn, refresh_s=0.0)  # refresh after every step
    assert explorer.image.value == b"" and explorer.save_button.disabled
    explorer.run_button.click()
    assert explorer.run_button.disabled  # busy while the worker runs
    _finish(explorer)
    total = explorer.config().total_steps
    assert explorer.steps_done == total == len(explorer.history["loss"]) == explorer.result.steps_done
    assert not explorer.result.interrupted
    assert explorer.image.value == image_png(explorer.result.images[0])
    assert len(explorer.thumbnails.children) == explorer.config().stages
    assert bytes(explorer.curve.value).startswith(b"\x89PNG")
    assert "done" in explorer.status.value and "PII · stage" in explorer.status.value  # preview: pixels, no prior
    assert not explorer.run_button.disabled and explorer.stop_button.disabled and not explorer.save_button.disabled


def test_the_status_line_calls_a_run_pii_only_where_it_is() -> None:
    assert stages_method(piikit.make_config("fast")) == "PII"
    assert stages_method(piikit.make_config("glance")) == "PII's stages on a fourier image + TV 0.1 prior"
    assert stages_method(piikit.make_config("fast", tv_weight=0.3, l2_weight=1e-4)).endswith("TV 0.3 + L2 0.0001 prior")


def test_stop_ends_the_run_within_a_step_or_two(make, tiny_cnn: nn.Module) -> None:
    # A large refresh interval makes chunks of up to 200 steps: Stop must not wait for one.
    explorer = make(tiny_cnn, refresh_s=1e3)
    explorer.knobs["steps_per_stage"].value = 400
    explorer.run()
    deadline = time.monotonic() + TIMEOUT
    while explorer.steps_done < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    before = explorer.steps_done
    explorer.stop_button.click()
    _finish(explorer)
    assert explorer.chunk > 2  # the stop came in the middle of a chunk
    assert before <= explorer.steps_done <= before + 2
    assert explorer.result.interrupted and explorer.result.stop_reason == "stopped"
    assert explorer.result.steps_done == explorer.steps_done
    assert "stopped" in explorer.status.value
    explorer.knobs["steps_per_stage"].value = 2  # the panel is usable again
    explorer.run()
    _finish(explorer)
    assert not explorer.result.interrupted and explorer.steps_done == explorer.config().total_steps


class _FailsAfter(nn.Module):
    """A real network that breaks after some forward passes, like a model with a bug on
    some inputs."""

    def __init__(self, model: nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.calls = model, calls
        self.pretrained_cfg = model.pretrained_cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("shape mismatch in layer4 (simulated model bug)")
        return self.model(x)


def test_a_failing_run_shows_the_error_and_keeps_the_last_good_image(make, tiny_cnn: nn.Module) -> None:
    explorer = make(_FailsAfter(tiny_cnn, calls=5), refresh_s=0.0)
    explorer.run()
    _finish(explorer)
    assert "RuntimeError" in explorer.status.value and "layer4" in explorer.status.value
    assert explorer.result is not None and explorer.image.value == image_png(explorer.result.images[0])
    assert 0 < explorer.steps_done < explorer.config().total_steps
    assert not explorer.run_button.disabled and explorer.stop_button.disabled


def test_bad_class_and_model_are_reported_in_the_panel(make, tiny_cnn: nn.Module) -> None:
    explorer = make(tiny_cnn)
    explorer.run()
    _finish(explorer)
    good, result = explorer.image.value, explorer.result
    explorer.class_box.value = "goldfsh"
    explorer.run()
    _finish(explorer)
    assert "UnknownClassError" in explorer.status.value and "goldfish" in explorer.status.value
    explorer.class_box.value = "1: goldfish"
    explorer.model_box.value = "resnet5"
    explorer.run()
    _finish(explorer)
    assert "UnknownModelError" in explorer.status.value and "resnet50" in explorer.status.value
    assert explorer.image.value == good and explorer.result is result
    assert not explorer.run_button.disabled


def test_refine_steps_continue_the_run_with_deepinversion(make, tiny_cnn: nn.Module, tiny_vit: nn.Module) -> None:
    for model in (tiny_cnn, tiny_vit):  # with and without BatchNorm
        explorer = make(model, refresh_s=0.0)
        explorer.knobs["refine_steps"].value = 2
        explorer.run()
        _finish(explorer)
        assert explorer.result.config.refine_steps == 2, explorer.status.value
        assert explorer.result.extra["bn_prior_used"] == (model is tiny_cnn)
        assert ("BatchNorm prior used" in explorer.status.value) == (model is tiny_cnn)
        assert explorer.steps_done == explorer.config().total_steps == explorer.result.steps_done
        assert explorer.history["stage"].max() == explorer.config().stages  # one more stage
        assert explorer.image.value == image_png(explorer.result.images[0])


def test_score_and_save(make, tiny_cnn: nn.Module, tmp_path) -> None:
    explorer = make(tiny_cnn, evaluators=[tiny_cnn])
    explorer.run()
    _finish(explorer)
    explorer.score_button.click()
    _finish(explorer)
    assert "1: goldfish" in explorer.scores.value and explorer.result.scores
    explorer.save_dir.value = str(tmp_path / "saved")
    explorer.save_button.click()
    _finish(explorer)
    pngs = list((tmp_path / "saved").glob("*.png"))
    meta = json.loads((tmp_path / "saved" / "result.json").read_text())
    assert len(pngs) == 1 and pngs[0].read_bytes().startswith(b"\x89PNG")
    assert meta["steps_done"] == explorer.steps_done and meta["scores"]
    assert "saved 1 PNG" in explorer.status.value


def test_a_grayscale_model_with_its_own_class_names(device: torch.device) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 10)).eval()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    digits = piikit.load_model(net, input_size=32, mean=(0.5,), std=(0.5,), class_names=names)
    explorer = Explorer("digits", "three", "preview", models={"digits": digits}, device=device, steps_per_stage=2)
    explorer.run()
    _finish(explorer)
    assert explorer.result is not None and explorer.result.targets == [3], explorer.status.value
    assert explorer.class_box.options[3] == "3: three"  # the class box follows the model
    assert explorer.image.value == image_png(explorer.result.images[0])


def test_a_grayscale_model_on_the_explorer_default(device: torch.device) -> None:
    # The default preset's Fourier image and grey border on one channel, at the model's own size.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 10)).eval()
    digits = piikit.load_model(net, input_size=32, mean=(0.5,), std=(0.5,))
    explorer = Explorer("digits", "7", models={"digits": digits}, device=device, steps_per_stage=2)
    explorer.knobs["image_size"].value = 0  # "the model's own"
    assert (explorer.config().param, explorer.config().image_size) == ("fourier", None)
    explorer.run()
    _finish(explorer)
    assert explorer.result is not None and explorer.result.targets == [7], explorer.status.value
    assert explorer.result.images.shape == (1, 1, 32, 32)
    assert explorer.image.value == image_png(explorer.result.images[0])


def test_a_one_channel_timm_model_in_the_explorer(device: torch.device) -> None:
    timm = pytest.importorskip("timm")
    net = timm.create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10).eval()
    model = piikit.load_model(net, input_size=32, mean=(0.5,), std=(0.5,))
    explorer = Explorer("gray", "3", models={"gray": model}, device=device, steps_per_stage=2, stages=2,
                        image_size=32, flip=0.5, border="noise")
    explorer.run()
    _finish(explorer)
    assert explorer.result is not None and explorer.result.images.shape == (1, 1, 32, 32), explorer.status.value
    assert explorer.result.config.flip == 0.5 and explorer.result.config.border == "noise"
