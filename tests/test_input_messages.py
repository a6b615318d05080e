"""Inputs that used to get a raw or empty message: each now gets one line that says what is
wrong and what would work, exit status 2 at the command, and nothing written."""

from __future__ import annotations

import pytest
import torch

import piikit
from piikit.analysis.attribution import METHODS
from piikit.errors import UnknownModelError
from piikit.interfaces.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("piikit: error: "), err
    return err


def test_an_unknown_setting_with_nothing_close_lists_the_settings(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["invert", "--set", "foo=1", "--class", "1", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "unknown inversion setting(s): foo; the settings are alpha, " in err and "ensemble" in err
    assert "did you mean" not in err and not out.exists()


def test_an_unknown_setting_close_to_one_names_it_only(tmp_path, capsys):
    assert main(["invert", "--set", "ensambl=1", "--class", "1", "--out", str(tmp_path / "out")]) == 2
    err = _one_line_error(capsys)
    assert "ensambl (did you mean ensemble?)" in err and "the settings are" not in err


@pytest.mark.parametrize("method", METHODS)
def test_attribute_names_the_channel_counts(tiny_cnn, method):
    clf = piikit.load_model(tiny_cnn)
    assert clf.in_chans == 3
    with pytest.raises(ValueError, match=r"takes 3-channel images, but the images have 1 channel\(s\) "
                                         r"\(shape \(2, 1, 32, 32\)\)"):
        piikit.attribute(clf, torch.rand(2, 1, 32, 32), target=1, method=method)


def test_a_folder_as_model_says_it_is_a_folder_and_names_its_model_files(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(UnknownModelError, match=r"is a folder, not a model; give a model file \(.pt, .pth, "
                                                r".safetensors, .bin; it has none\), or a model name"):
        piikit.load_model(str(tmp_path / "weights"))
    (tmp_path / "weights" / "model.safetensors").write_bytes(b"")
    with pytest.raises(UnknownModelError, match=r"give a model file in it \(.*weights/model.safetensors\)"):
        piikit.load_model(tmp_path / "weights")


def test_a_path_that_does_not_exist_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownModelError, match=r"'./weights_v2': no such file or folder; give a model file that "
                                                r"exists \(.pt, .pth, .safetensors, .bin\), or a model name"):
        piikit.load_model("./weights_v2")
    assert main(["invert", "--model", "./weights_v2", "--class", "1", "--out", "out/a"]) == 2
    assert "no such file or folder" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []  # --out was checked, and nothing is left of the check
