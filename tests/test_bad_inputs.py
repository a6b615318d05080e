"""Bad input found by trying it as a user would: each gives a one-line error that says what
to do instead, found before a run starts (so no work is lost), from Python and from the CLI."""

from __future__ import annotations

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
