"""`piikit score DIR` on what `InversionResult.save` wrote, and `piikit invert --score`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from skimage import data

import piikit
from piikit.interfaces.cli import main



def _photo(array) -> torch.Tensor:
    x = torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)[0]


@pytest.fixture()
def saved(tmp_path):
    """A saved "result" whose images are real photos (cat, espresso) plus one noise image,
    so the expected scores are known."""
    images = torch.stack([_photo(data.chelsea()), _photo(data.coffee()),
                          torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))])
    result = piikit.InversionResult(
        images=images, targets=[285, 967, 980], class_names=piikit.labels.imagenet_classes(),
        config=piikit.make_config("preview"), seed=0, model_name="efficientnet_lite0", history={}, snapshots=[],
    )
    result.save(tmp_path)
    return tmp_path


def test_score_prints_a_table_and_writes_result_json(saved, capsys):
    assert main(["score", str(saved), "--evaluator", "efficientnet_lite2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "00_0285_egyptian_cat.png" in out and "285: Egyptian cat" in out
    assert "mean prob" in out
    summary = out.strip().splitlines()[-1].split()
    assert summary[:4] == ["efficientnet_lite2", "3", "0.67", "0.67"]  # cat and espresso top-1, noise not
    assert summary[-1] == "260x260"
    rows = json.loads((saved / "result.json").read_text())["scores"]
    assert [(r["file"], r["evaluator"], r["top1"]) for r in rows] == [
        ("00_0285_egyptian_cat.png", "efficientnet_lite2", True),
        ("01_0967_espresso.png", "efficientnet_lite2", True),
        ("02_0980_volcano.png", "efficientnet_lite2", False),
    ]


def test_score_defaults_to_the_other_models_and_merges_by_evaluator(saved, capsys):
    assert main(["score", str(saved), "--evaluator", "efficientnet_lite2", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["score", str(saved), "--device", "cpu", "--json"]) == 0  # Lite0 made it: Lite1 + Lite2
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["summary"]) == ["efficientnet_lite1", "efficientnet_lite2"]
    rows = json.loads((saved / "result.json").read_text())["scores"]
    assert sorted({r["evaluator"] for r in rows}) == ["efficientnet_lite1", "efficientnet_lite2"]
    assert len(rows) == 6  # Lite2's earlier rows were replaced, not duplicated


def test_score_json_output_and_no_save(saved, capsys):
    before = (saved / "result.json").read_text()
    assert main(["score", str(saved), "--evaluator", "efficientnet_lite0", "--json", "--no-save", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["efficientnet_lite0"]["n"] == 3
    assert [r["top1"] for r in report["rows"]] == [True, True, False]
    assert (saved / "result.json").read_text() == before


def test_score_reads_every_batch_of_a_directory(tmp_path, capsys):
    """`piikit invert --batch N` saves batchNNN_result.json files side by side."""
    for j, (array, target) in enumerate([(data.chelsea(), 285), (data.coffee(), 967)]):
        piikit.InversionResult(
            images=_photo(array)[None], targets=[target], class_names=piikit.labels.imagenet_classes(),
            config=piikit.make_config("preview"), seed=0, model_name="efficientnet_lite0", history={}, snapshots=[],
        ).save(tmp_path, prefix=f"batch{j:03d}_")
    assert main(["score", str(tmp_path), "--evaluator", "efficientnet_lite1", "--device", "cpu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["file"], r["target"], r["top1"]) for r in rows] == [
        ("batch000_00_0285_egyptian_cat.png", 285, True), ("batch001_00_0967_espresso.png", 967, True)]
    assert json.loads((tmp_path / "batch001_result.json").read_text())["scores"][0]["target"] == 967


def test_score_no_resize(saved, capsys):
    assert main(["score", str(saved), "--evaluator", "efficientnet_lite2", "--no-resize", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].split()[-1] == "224x224"


def test_score_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["score", str(tmp_path / "missing")]) == 2
    assert "no directory" in capsys.readouterr().err
    assert main(["score", str(tmp_path)]) == 2
    assert "no result.json" in capsys.readouterr().err


def test_invert_with_score_scores_with_the_other_models(tmp_path, capsys):
    args = ["invert", "--class", "goldfish", "--preset", "preview", "--stages", "1", "--steps-per-stage", "1",
            "--image-size", "64", "--device", "cpu", "--out", str(tmp_path), "--score", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scored by efficientnet_lite1" in out and "scored by efficientnet_lite2" in out
    meta = json.loads((tmp_path / "result.json").read_text())
    assert {r["evaluator"] for r in meta["scores"]} == {"efficientnet_lite1", "efficientnet_lite2"}
    assert all(r["target"] == 1 for r in meta["scores"])


# ------------------------------------------------------------------ damaged inputs (issue 21): one line, exit 2
def _small_result(tmp_path):
    result = piikit.InversionResult(
        images=torch.rand(1, 3, 32, 32), targets=[1], class_names=piikit.labels.imagenet_classes(),
        config=piikit.make_config("preview"), seed=0, model_name="m", history={}, snapshots=[],
    )
    result.save(tmp_path)
    return tmp_path / "result.json"


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("piikit: error:") and "\n" not in err, err
    return err


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "holds a list, not an object with 'files'"),
    ('{"files": ["00_0001_goldfish.png"], "targets": [{"label": "x"}]}', "'targets' must be a list of objects with an integer 'index'"),
    ("{not json", "is not JSON"),
    ('{"files": "00_0001_goldfish.png", "targets": [{"index": 1}]}', "'files' must be a list of image file names"),
])
def test_a_damaged_result_json_is_named_in_one_line(tmp_path, capsys, content, message):
    meta = _small_result(tmp_path)
    meta.write_text(content)
    err = _one_line_error(["score", str(tmp_path), "--device", "cpu"], capsys)
    assert message in err and str(meta) in err


def test_a_truncated_png_is_named_in_one_line(tmp_path, capsys):
    _small_result(tmp_path)
    png = tmp_path / "00_0001_goldfish.png"
    png.write_bytes(png.read_bytes()[:60])
    err = _one_line_error(["score", str(tmp_path), "--device", "cpu"], capsys)
    assert f"{png} is not a readable image" in err


def test_scores_are_printed_even_when_result_json_cannot_be_written(tmp_path, capsys, monkeypatch):
    import piikit.engine.result_files as store

    _small_result(tmp_path)

    def read_only(path, data):  # tests run as root, whom chmod does not stop: the failure is injected
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store, "write_atomic", read_only)
    assert main(["score", str(tmp_path), "--evaluator", "efficientnet_lite0", "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "00_0001_goldfish.png" in captured.out  # the scores, printed anyway
    assert "could not save the scores into" in captured.err and "Permission denied" in captured.err


@pytest.mark.parametrize("name", ["../other/x.png", "/etc/hostname", "link.png"])
def test_image_names_leading_outside_the_folder_are_refused_before_anything_is_read(tmp_path, capsys, name, monkeypatch):
    import piikit.engine.result_files as files

    folder = tmp_path / "result"
    meta_path = _small_result(folder)
    (tmp_path / "other").mkdir()
    outside = tmp_path / "other" / "x.png"
    outside.write_bytes((folder / "00_0001_goldfish.png").read_bytes())
    (folder / "link.png").symlink_to(outside)
    meta = json.loads(meta_path.read_text())
    meta["files"] = [name]
    meta_path.write_text(json.dumps(meta))
    before = meta_path.read_text()
    read = []
    monkeypatch.setattr(files, "read_images", lambda paths: read.append(paths))
    err = _one_line_error(["score", str(folder), "--device", "cpu"], capsys)
    assert "names an image outside its folder" in err and repr(name) in err
    assert read == [] and meta_path.read_text() == before  # nothing read, nothing written
