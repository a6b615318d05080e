import json
import subprocess
import sys

import pytest

from piikit.interfaces.cli import main


def test_invert_writes_images_and_metadata(tmp_path, capsys):
    code = main(["invert", "--model", "test_resnet", "--no-pretrained", "--class", "volcano", "--class", "11",
                 "--preset", "preview", "--stages", "2", "--steps-per-stage", "2", "--image-size", "64",
                 "--set", "ensemble=1", "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["00_0980_volcano.png", "01_0011_goldfinch.png"]
    meta = json.loads((tmp_path / "result.json").read_text())
    assert meta["config"]["ensemble"] == 1 and meta["config"]["stages"] == 2
    assert "980: volcano" in capsys.readouterr().out


def test_many_classes_run_in_batches(tmp_path):
    (tmp_path / "classes.txt").write_text("1\n2\n3\n")
    code = main(["invert", "--model", "test_resnet", "--no-pretrained", "--classes-file", str(tmp_path / "classes.txt"),
                 "--batch", "2", "--preset", "preview", "--stages", "1", "--steps-per-stage", "1",
                 "--image-size", "32", "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"])
    assert code == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["batch000_result.json", "batch001_result.json"]


@pytest.mark.parametrize("argv,message", [
    (["invert", "--class", "volcanoe", "--preset", "preview"], "did you mean '980: volcano'"),
    (["invert", "--class", "5000", "--preset", "preview"], "out of range"),
    (["invert", "--model", "efficientnet_lite9", "--class", "1"], "did you mean efficientnet_lite"),
    (["invert", "--preset", "preview"], "at least one --class"),
    (["invert", "--class", "1", "--set", "ensembel=2"], "ensemble"),
    (["classes", "--search", "qqqqxxzz"], "no class matches"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("piikit: error:") and message in err and "\n" not in err


def test_classes_and_models(capsys):
    assert main(["classes", "--search", "terrier", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("terrier" in line for line in lines)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(f"efficientnet_lite{i}" in out for i in range(3))


def test_the_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "piikit.interfaces.cli", "classes", "--search", "volcano"],
                          capture_output=True, text=True, check=True)
    assert "980" in done.stdout


def test_the_command_tunes_glibc_malloc_and_is_a_no_op_elsewhere(monkeypatch):
    import platform

    from piikit.interfaces import process

    assert process.tune_malloc() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert process.tune_malloc() is False
    calls = []
    monkeypatch.setattr(process, "tune_malloc", lambda: calls.append(1) or True)
    process.set_process_defaults()
    assert calls == [1]


def test_every_config_field_has_a_flag_made_from_it_and_flags_not_given_keep_the_preset():
    import dataclasses

    import piikit
    from piikit.interfaces.cli import _config_overrides, build_parser

    parser = build_parser()
    fields = [f.name for f in dataclasses.fields(piikit.InversionConfig)]
    for command in ("invert", "sweep"):
        args = parser.parse_args([command, "--class", "1"] if command == "invert" else [command])
        assert _config_overrides(args) == {}  # nothing given: the preset decides everything
    args = parser.parse_args(["invert", *(f"--{f.replace('_', '-')}" for f in ("amp",)), "--no-color-shift",
                              "--refine-steps", "5", "--betas", "0.5,0.9", "--schedule", "zoom",
                              "--micro-batch", "auto", "--image-size", "none", "--set", "rotate=3"])
    given = _config_overrides(args)
    config = piikit.make_config("fast", **given)
    assert (config.amp, config.color_shift, config.refine_steps, config.betas, config.schedule) == (
        True, False, 5, (0.5, 0.9), "zoom")
    assert (config.micro_batch, config.image_size, config.rotate) == ("auto", None, 3)
    helps = {a.dest: a.help for a in parser._subparsers._group_actions[0].choices["invert"]._actions}
    docs = piikit.InversionConfig.field_docs()
    assert all(helps[f] == docs[f].replace("%", "%%") and docs[f] for f in fields)  # one description per setting
