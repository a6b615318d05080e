"""Bad input found by trying it as a user would: each gives a one-line error that says what
to do instead, found before a run starts (so no work is lost), from Python and from the CLI."""

from __future__ import annotations

import json
import re
import socket
import zipfile

import pytest
import timm
import torch
from torch import nn

import piikit
from piikit.interfaces.cli import main
from piikit.errors import DeviceUnavailableError, HubUnavailableError, ModelLoadError

# A run that takes well under a second with the tiny CNN.
INVERT = ["invert", "--class", "1", "--preset", "preview", "--stages", "1", "--steps-per-stage", "1",
          "--image-size", "32", "--quiet"]
TINY = [*INVERT, "--model", "test_resnet", "--no-pretrained", "--device", "cpu"]


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("piikit: error:") and "\n" not in err, err
    return err


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the CLI gets as far as starting a run."""

    def started(*args, **kwargs):
        raise AssertionError("the run started before the bad input was reported")

    monkeypatch.setattr("piikit.engine.inversion.invert", started)


# ------------------------------------------------------------------ --out
def test_out_that_is_an_existing_file_is_refused_before_the_run(tmp_path, capsys, no_run):
    existing = tmp_path / "taken.png"
    existing.write_bytes(b"x")
    assert "is an existing file; give a directory" in _cli_error([*TINY, "--out", str(existing)], capsys)
    assert existing.read_bytes() == b"x"


def test_out_that_cannot_be_created_is_refused_before_the_run(tmp_path, capsys, no_run):
    (tmp_path / "file").write_text("")
    err = _cli_error([*TINY, "--out", str(tmp_path / "file" / "sub")], capsys)
    assert "cannot be written to" in err and "writable directory" in err


def test_out_is_created_when_missing(tmp_path):
    assert main([*TINY, "--out", str(tmp_path / "new" / "dir")]) == 0
    assert len(list((tmp_path / "new" / "dir").glob("*.png"))) == 1


# ------------------------------------------------------------------ devices
def test_a_device_that_is_not_one_names_the_devices_here():
    with pytest.raises(DeviceUnavailableError, match=r"'tpu' is not a device; devices here: .*cpu"):
        piikit.invert("test_resnet", 1, "preview", device="tpu")
    assert "cpu" in piikit.available_devices()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_names_the_devices_here(capsys, no_run):
    with pytest.raises(DeviceUnavailableError, match="'cuda' is not available on this machine; devices here: cpu"):
        piikit.resolve_device("cuda")
    err = _cli_error([*INVERT, "--model", "test_resnet", "--no-pretrained", "--device", "cuda", "--out", "unused"],
                     capsys)
    assert "devices here: cpu" in err


# ------------------------------------------------------------------ schedule against size
def test_more_stages_than_the_size_allows_fail_before_any_step(tiny_cnn):
    steps = []
    with pytest.raises(ValueError, match="stages=100 is too many for image_size=32.*at most 15 stages"):
        piikit.invert(tiny_cnn, 1, "preview", stages=100, image_size=32, callbacks=[steps.append], progress=False)
    assert steps == []


def test_a_first_stage_the_model_cannot_take_is_reported_up_front():
    # A 9×9 kernel without padding: fine at 16 px and more, not on the first stage's 4 px.
    net = nn.Sequential(nn.Conv2d(3, 4, 9), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    clf = piikit.load_model(net, input_size=64)
    assert not clf.fixed_input_size
    with pytest.raises(ValueError, match=r"cannot take the first stage's 4×4 image .*fewer stages \(now 15\)"):
        piikit.invert(clf, 1, "preview", stages=15, image_size=32, progress=False)


# ------------------------------------------------------------------ files that are not checkpoints
@pytest.mark.parametrize("content", [b"hello, this is text\n", bytes(range(256)) * 4, b"PK\x03\x04broken zip"])
def test_a_file_that_is_not_a_checkpoint_is_reported_truthfully(tmp_path, content, capsys):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    for attempt in (lambda: piikit.load_model(path), lambda: piikit.load_model("test_resnet", checkpoint=path)):
        with pytest.raises(ModelLoadError, match="is not a PyTorch checkpoint, or it is damaged") as info:
            attempt()
        assert "trust_pickle" not in str(info.value) and "pickled Python objects" not in str(info.value)
    assert "--trust-pickle" not in _cli_error([*INVERT, "--model", str(path), "--out", str(tmp_path)], capsys)


def test_a_truncated_checkpoint_and_a_damaged_safetensors_file_are_reported(tmp_path):
    torch.save(timm.create_model("test_resnet").state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="damaged"):
        piikit.load_model("test_resnet", checkpoint=tmp_path / "cut.pth")
    (tmp_path / "w.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="is not a readable safetensors file"):
        piikit.load_model("test_resnet", checkpoint=tmp_path / "w.safetensors")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is empty"):
        piikit.load_model(tmp_path / "empty.pt")


def test_a_pickled_model_names_what_it_would_import_and_the_flag_for_the_cli(tmp_path, tiny_cnn, capsys):
    torch.save(tiny_cnn, tmp_path / "whole.pt")
    assert zipfile.is_zipfile(tmp_path / "whole.pt")
    with pytest.raises(ModelLoadError, match=r"holds pickled Python objects \(.*timm\.models\.resnet.*trust_pickle=True"):
        piikit.load_model(tmp_path / "whole.pt")
    err = _cli_error([*INVERT, "--model", str(tmp_path / "whole.pt"), "--out", str(tmp_path)], capsys)
    assert "pass --trust-pickle" in err and "trust_pickle=True" not in err


# ------------------------------------------------------------------ init images
def test_init_with_nan_or_inf_is_refused_before_the_run(tiny_cnn):
    init = torch.rand(1, 3, 32, 32)
    init[0, 0, 0, :2] = torch.tensor([float("nan"), float("inf")])
    steps = []
    with pytest.raises(ValueError, match="init holds 2 NaN/inf value"):
        piikit.invert(tiny_cnn, 1, "preview", init=init, image_size=32, callbacks=[steps.append], progress=False)
    assert steps == []


def test_init_outside_0_1_is_clamped_with_a_warning(tiny_cnn):
    normalized = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2
    with pytest.warns(UserWarning, match=r"outside \[0, 1\].*clamped"):
        inv = piikit.Inversion(tiny_cnn, 1, "preview", init=normalized, image_size=32, progress=False)
    r = inv.run(max_steps=1)
    assert r.images.min() >= 0 and r.images.max() <= 1


def test_init_with_the_wrong_shape_says_the_shape_it_needs(tiny_cnn):
    with pytest.raises(ValueError, match=r"init must be 2×3×H×W images .*got shape \(2, 1, 32, 32\)"):
        piikit.invert(tiny_cnn, [1, 2], "preview", init=torch.rand(2, 1, 32, 32), progress=False)


# ------------------------------------------------------------------ hub errors speak the caller's language
@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)


@pytest.mark.parametrize("name", ["resnet18", "torchvision:resnet18"])
def test_hub_error_names_python_calls_from_python_and_flags_from_the_cli(offline, name, tmp_path, capsys):
    with pytest.raises(HubUnavailableError) as info:
        piikit.load_model(name)
    python = str(info.value)
    assert f"load_model({name!r}, pretrained=False)" in python and "--no-pretrained" not in python
    err = _cli_error(["invert", "--model", name, "--class", "1", "--out", str(tmp_path)], capsys)
    assert f"--model {name} --no-pretrained" in err and "--checkpoint FILE" in err
    assert "load_model(" not in err and "pretrained=False" not in err


# ------------------------------------------------------------------ one validation layer (issue 21)
@pytest.mark.parametrize("overrides, message", [
    (dict(ensemble=2.5), "ensemble must be a whole number, got 2.5"),
    (dict(ensemble=True), "ensemble must be a whole number, got True"),
    (dict(ensemble="4"), "ensemble must be a whole number, got '4'"),
    (dict(ensemble=0), "ensemble must be a whole number >= 1, got 0"),
    (dict(lr="0.1"), "lr must be a number, got '0.1'"),
    (dict(lr=float("inf")), "lr must be a finite number, got inf"),
    (dict(lr=float("nan")), "lr must be a finite number, got nan"),
    (dict(lr=-1), "lr must be a number > 0, got -1"),
    (dict(stages=2.5), "stages must be a whole number, got 2.5"),
    (dict(steps_per_stage=2.5), "steps_per_stage must be a whole number, got 2.5"),
    (dict(image_size=64.5), "image_size must be a whole number or None, got 64.5"),
    (dict(betas=(0.5,)), "betas must be a tuple of 2 numbers, got (0.5,)"),
    (dict(betas=(0.5, 1.0)), "each of betas must be a number in [0, 1), got 1"),
    (dict(amp="yes"), "amp must be True or False, got 'yes'"),
    (dict(schedule="zoom+centre"), "schedule must be one of 'zoom+center'"),
    (dict(micro_batch=0), "micro_batch must be a whole number >= 1, got 0"),
])
def test_config_fields_are_checked_the_same_from_the_api_set_and_flags(overrides, message, capsys, no_run):
    import re

    with pytest.raises(piikit.errors.InvalidValueError, match=re.escape(message)):
        piikit.make_config("preview", **overrides)
    ((key, value),) = overrides.items()
    text = value if isinstance(value, str) else repr(value) if isinstance(value, tuple) else str(value).lower()
    if isinstance(value, tuple):
        text = "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, str):
        text = json.dumps(value)
    if text in ("inf", "nan"):
        text = {"inf": "Infinity", "nan": "NaN"}[text]  # what json.loads reads as a float
    base = ["invert", "--class", "1", "--model", "test_resnet", "--no-pretrained", "--device", "cpu", "--quiet"]
    err = _cli_error([*base, "--set", f"{key}={text}", "--out", "unused"], capsys)
    assert message.split(", got")[0] in err


def test_flags_give_the_api_message(capsys, no_run):
    assert "ensemble must be a whole number >= 1, got 0" in _cli_error([*TINY, "--ensemble", "0", "--out", "x"], capsys)
    assert "lr must be a finite number, got inf" in _cli_error([*TINY, "--lr", "inf", "--out", "x"], capsys)
    assert "stages must be a whole number >= 1, got 0" in _cli_error([*TINY, "--stages", "0", "--out", "x"], capsys)


def test_numpy_numbers_are_accepted_as_config_values():
    np = pytest.importorskip("numpy")
    config = piikit.make_config("preview", ensemble=np.int64(3), lr=np.float32(0.5), betas=[0.1, 0.2])
    assert (config.ensemble, type(config.ensemble), config.betas) == (3, int, (0.1, 0.2))


@pytest.mark.parametrize("target, index", [(3.0, 3), ("5", 5), (torch.tensor(5), 5)])
def test_integer_like_targets_are_accepted(tiny_cnn, target, index):
    inv = piikit.Inversion(tiny_cnn, target, "preview", image_size=32, progress=False)
    assert inv.targets == [index]


def test_numpy_targets_are_accepted(tiny_cnn):
    import numpy as np

    assert piikit.Inversion(tiny_cnn, np.int64(5), "preview", image_size=32, progress=False).targets == [5]
    assert piikit.Inversion(tiny_cnn, np.array([1, 2]), "preview", image_size=32, progress=False).targets == [1, 2]
    assert piikit.Inversion(tiny_cnn, torch.tensor([1, 2]), "preview", image_size=32, progress=False).targets == [1, 2]


@pytest.mark.parametrize("target, message", [
    (3.5, "target 3.5 is not a class"), (True, "target True is not a class"), (float("nan"), "target nan is not"),
    (torch.tensor(2.5), "target tensor(2.5000) is not a class"), (None if False else 2 + 1j, "target (2+1j) is not"),
])
def test_other_targets_are_refused_in_one_line(tiny_cnn, target, message):
    with pytest.raises(piikit.errors.InvalidValueError, match=re.escape(message) + ".*a class index") as info:
        piikit.invert(tiny_cnn, target, "preview", image_size=32, progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=2**70), "seed must be a whole number in [0, 1.84467e+19], got 1180591620717411303424"),
    (dict(seed=-1), "seed must be a whole number in [0"),
    (dict(seed=1.5), "seed must be a whole number in [0"),
    (dict(targets=None, num_images=0), "num_images must be a whole number >= 1, got 0"),
])
def test_seed_and_counts_are_checked(tiny_cnn, kwargs, message):
    from piikit.engine.features import ChannelObjective

    args = {"targets": 1, **kwargs}
    objective = ChannelObjective("layer1", 0) if args["targets"] is None else None
    with pytest.raises(piikit.errors.InvalidValueError, match=re.escape(message)):
        piikit.invert(tiny_cnn, args.pop("targets"), "preview", image_size=32, progress=False, objective=objective,
                      **args)


# ------------------------------------------------------------------ models
class _Raises(nn.Module):
    def forward(self, x):
        raise KeyError("my bug")


class _IntLogits(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 10, dtype=torch.long)


class _NaNLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 10, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3)) * float("nan")


@pytest.mark.parametrize("model, message", [
    (_Raises(), r"the model's forward fails on every input tried \(KeyError: 'my bug'\); fix the model"),
    (_IntLogits(), "the model returns int64 logits; inversion needs floating-point logits"),
    (_NaNLogits(), "the model returns NaN/inf logits on a blank 3×224×224 image; check its weights"),
    (42, "model must be a name .*, a checkpoint path or an nn.Module, got int '42'"),
    (_Raises, r"model is the class _Raises, not a model: pass an instance, e.g. _Raises\(\)"),
])
def test_models_that_cannot_be_inverted_get_one_line(model, message):
    for call in (lambda: piikit.load_model(model), lambda: piikit.invert(model, 1, "preview", progress=False)):
        with pytest.raises(piikit.errors.UnsupportedModelError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


def test_a_meta_device_model_and_zero_std_are_refused():
    with torch.device("meta"):
        meta = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(piikit.errors.UnsupportedModelError, match="weights are on the meta device.*assign=True"):
        piikit.load_model(meta)
    with pytest.raises(piikit.errors.UnsupportedModelError, match=r"std must be > 0 .*got \(0,\)"):
        piikit.load_model("test_resnet", pretrained=False, std=(0,))


@pytest.mark.skipif(torch.cuda.device_count() > 3, reason="this machine has cuda:3")
def test_load_model_on_a_missing_device_raises_like_invert():
    with pytest.raises(DeviceUnavailableError, match="cuda"):
        piikit.load_model("test_resnet", pretrained=False, device="cuda:3")


def test_a_layer_that_is_not_a_name_gets_one_line(tiny_cnn):
    from piikit.models.layers import find_layer

    with pytest.raises(piikit.errors.UnknownLayerError, match="layer must be a layer's name .*got int 5"):
        find_layer(piikit.load_model(tiny_cnn), 5)


# ------------------------------------------------------------------ init in other forms
def test_init_as_numpy_list_uint8_or_png_path(tiny_cnn, tmp_path):
    import numpy as np

    from piikit.images import save_png

    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    save_png(image[0], tmp_path / "x.png")
    uint8 = (image * 255).round().to(torch.uint8)
    for init in (image.numpy(), image.tolist(), uint8, str(tmp_path / "x.png"), tmp_path / "x.png"):
        inv = piikit.Inversion(tiny_cnn, 1, "preview", init=init, image_size=32, progress=False)
        assert inv._init is not None and inv._init.max() <= 1 and inv._init.dtype == torch.float32
    with pytest.raises(piikit.errors.InvalidValueError, match="init 'nope.png' cannot be read as an image"):
        piikit.Inversion(tiny_cnn, 1, "preview", init="nope.png", image_size=32, progress=False)
    with pytest.raises(piikit.errors.InvalidValueError, match="init must be real-valued images"):
        piikit.Inversion(tiny_cnn, 1, "preview", init=torch.rand(1, 3, 8, 8) * 1j, image_size=32, progress=False)
    refined = piikit.refine(tiny_cnn, init=str(tmp_path / "x.png"), targets=[1], steps=1, image_size=32,
                            progress=False)
    assert refined.images.shape == (1, 3, 32, 32)


def test_a_0_255_init_gets_a_divide_by_255_hint(tiny_cnn):
    with pytest.warns(UserWarning, match="divide by 255"):
        piikit.Inversion(tiny_cnn, 1, "preview", init=torch.rand(1, 3, 32, 32) * 255, image_size=32, progress=False)


# ------------------------------------------------------------------ CLI files and counts
def test_classes_file_folder_binary_and_bom(tmp_path, capsys, no_run):
    assert "is a folder; give a text file" in _cli_error([*TINY, "--classes-file", str(tmp_path), "--out", "x"], capsys)
    (tmp_path / "bin").write_bytes(bytes(range(256)))
    err = _cli_error([*TINY, "--classes-file", str(tmp_path / "bin"), "--out", "x"], capsys)
    assert f"--classes-file {tmp_path / 'bin'} is not UTF-8 text" in err
    (tmp_path / "bom.txt").write_bytes("\ufeffvolcanoo\n".encode())  # the BOM is dropped; the name is checked
    err = _cli_error([*TINY, "--classes-file", str(tmp_path / "bom.txt"), "--out", str(tmp_path / "o")], capsys)
    assert "unknown class 'volcanoo'" in err and "\\ufeff" not in err


@pytest.mark.parametrize("argv, message", [
    ([*TINY, "--out", ""], "--out is empty; give a directory"),
    ([*TINY, "--batch", "0", "--out", "x"], "--batch must be a whole number >= 1, got 0"),
    ([*TINY, "--batch", "-1", "--out", "x"], "--batch must be a whole number >= 1, got -1"),
    (["sweep", "--classes", "1", "--out", ""], "--out is empty"),
    (["sweep", "--classes", "1", "--batch", "0"], "--batch must be a whole number >= 1, got 0"),
    (["score", ".", "--batch-size", "0"], "--batch-size must be a whole number >= 1, got 0"),
    (["classes", "--search", "cat", "--limit", "0"], "--limit must be a whole number >= 1, got 0"),
    (["classes", "--search", "cat", "--limit", "-1"], "--limit must be a whole number >= 1, got -1"),
])
def test_counts_and_empty_paths_get_one_line(argv, message, capsys, no_run):
    assert message in _cli_error(argv, capsys)


def test_sweep_out_that_is_a_file_or_unwritable(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    assert "is an existing file" in _cli_error(["sweep", "--classes", "1", "--out", str(tmp_path / "file")], capsys)
    # Tests run as root, whom chmod does not stop: the failure is injected.
    real_mkdir = type(tmp_path).mkdir

    def denied(self, *args, **kwargs):
        if "denied" in str(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "mkdir", denied)
    err = _cli_error(["sweep", "--models", "test_resnet", "--no-pretrained", "--device", "cpu", "--classes", "1",
                      "--image-size", "32", "--out", str(tmp_path / "denied" / "runs")], capsys)
    assert "cannot be written to (Permission denied)" in err
