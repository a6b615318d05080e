import dataclasses

import pytest

from piikit import PRESETS, InversionConfig, make_config


def test_paper_preset_is_the_paper_field_by_field():
    paper = PRESETS["paper"]
    assert paper == InversionConfig()
    assert paper.stages == 7
    assert paper.steps_per_stage == 400
    assert paper.schedule == "zoom+center"
    assert paper.ensemble == 32
    assert paper.alpha == 1.0 and paper.beta == 1.0
    assert paper.color_shift is True
    assert paper.jitter == 32
    assert paper.flip == 0.0
    assert paper.lr == 0.01
    assert paper.betas == (0.5, 0.99)
    assert paper.lr_schedule == "cosine"
    assert paper.micro_batch is None and paper.amp is False
    assert paper.total_steps == 2800


def test_smaller_presets_are_smaller():
    for name in ("fast", "preview"):
        assert PRESETS[name].total_steps * PRESETS[name].ensemble < PRESETS["paper"].total_steps * 32
    assert PRESETS["preview"].total_steps < PRESETS["fast"].total_steps


def test_overrides_and_none_means_keep():
    cfg = make_config("paper", ensemble=8, lr=None)
    assert cfg.ensemble == 8 and cfg.lr == 0.01
    assert make_config(cfg) is cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_unknown_preset_and_field_are_explained():
    with pytest.raises(ValueError, match="paper"):
        make_config("slow")
    with pytest.raises(TypeError, match="ensemble"):
        make_config("paper", ensembel=4)


@pytest.mark.parametrize("field,value", [("ensemble", 0), ("stages", 0), ("flip", 2.0), ("lr", 0.0),
                                         ("schedule", "spiral"), ("micro_batch", 0)])
def test_invalid_values_are_rejected(field, value):
    with pytest.raises(ValueError):
        make_config("paper", **{field: value})


def test_one_config_base_declares_the_shared_fields_once():
    import typing

    from piikit import DEEPINVERSION_PRESETS, DeepInversionConfig
    from piikit.engine.config import DEFAULT_PRESET, LR_SCHEDULES, ConfigBase
    from piikit.engine.param import PARAM_KINDS, ParamKind
    from piikit.engine.schedule import BORDER_FILLS, SCHEDULE_MODES, BorderFill, ScheduleMode

    shared = {f.name for f in dataclasses.fields(ConfigBase)}
    assert {"image_size", "jitter", "flip", "lr", "betas", "lr_schedule", "param", "amp", "channels_last"} <= shared
    assert issubclass(InversionConfig, ConfigBase) and issubclass(DeepInversionConfig, ConfigBase)
    # choice lists come from their Literal types
    assert SCHEDULE_MODES == typing.get_args(ScheduleMode) and PARAM_KINDS == typing.get_args(ParamKind)
    assert BORDER_FILLS == typing.get_args(BorderFill) and LR_SCHEDULES == ("cosine", "constant")
    # replace, presets by name and to_dict behave the same for both
    with pytest.raises(TypeError, match="did you mean steps"):
        DeepInversionConfig().replace(stesp=3)
    assert DeepInversionConfig.make("preview") == DEEPINVERSION_PRESETS["preview"]
    with pytest.raises(ValueError, match="DeepInversion preset"):
        DeepInversionConfig.make("slow")
    assert DeepInversionConfig().to_dict()["jitter"] == 30 and InversionConfig().to_dict()["jitter"] == 32
    assert make_config() == PRESETS[DEFAULT_PRESET]


def test_every_entry_point_defaults_to_the_same_preset():
    import inspect

    import piikit
    from piikit.engine.config import DEFAULT_PRESET
    from piikit.interfaces.cli import build_parser

    # The explorer starts on its own preset ("glance", readable in seconds): tests/test_widgets.py.
    for fn in (piikit.invert, piikit.make_config, piikit.compare_settings, piikit.sweep, piikit.Inversion):
        assert inspect.signature(fn).parameters["preset"].default == DEFAULT_PRESET, fn
    assert build_parser().parse_args(["invert", "--class", "1"]).preset == DEFAULT_PRESET
    assert build_parser().parse_args(["sweep", "--classes", "1"]).preset == DEFAULT_PRESET


def test_both_configs_check_every_field_from_its_annotation():
    from piikit.errors import InvalidValueError
    from piikit.engine.deepinversion import DeepInversionConfig

    for make in (lambda **kw: make_config("preview", **kw), lambda **kw: DeepInversionConfig(**kw)):
        with pytest.raises(InvalidValueError, match="lr must be a number, got '0.1'"):
            make(lr="0.1")
        with pytest.raises(InvalidValueError, match="jitter must be a whole number, got 2.5"):
            make(jitter=2.5)
        with pytest.raises(InvalidValueError, match="flip must be a finite number, got nan"):
            make(flip=float("nan"))
    with pytest.raises(InvalidValueError, match="steps must be a whole number, got 10.5"):
        DeepInversionConfig(steps=10.5)


def test_none_keeps_a_value_except_where_none_is_the_fields_own_value():
    from piikit.engine.deepinversion import DeepInversionConfig
    from piikit.errors import InvalidValueError

    fast = make_config("fast")
    assert fast.micro_batch == 4 and make_config("fast", lr=None).lr == fast.lr
    assert make_config("fast", micro_batch=None).micro_batch is None  # all at once, not "keep"
    assert make_config("fast", image_size=64).replace(image_size=None).image_size is None  # the model's own
    with pytest.raises(InvalidValueError, match="warmup_steps must be a whole number >= 0, got -1"):
        DeepInversionConfig(warmup_steps=-1)  # DeepInversion's config checks through piikit.validation too
