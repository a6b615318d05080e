import json

import numpy as np
import pytest
import torch
from PIL import Image

import piikit


@pytest.fixture(scope="module")
def result(tiny_models):
    return piikit.invert(tiny_models["cnn"], ["volcano", "goldfinch"], "preview", seed=0, progress=False,
                         stages=2, steps_per_stage=3, image_size=64)


def test_save_writes_one_png_per_target_and_the_full_metadata(result, tmp_path):
    paths = result.save(tmp_path, snapshots=True)
    assert [p.name for p in paths] == ["00_0980_volcano.png", "01_0011_goldfinch.png"]
    for path, img in zip(paths, result.images):
        png = torch.from_numpy(np.array(Image.open(path))).float().permute(2, 0, 1) / 255
        assert torch.allclose(png, img, atol=1 / 255)
        assert path.with_name(path.stem + "_stages.png").exists()
    meta = json.loads((tmp_path / "result.json").read_text())
    assert meta["seed"] == 0 and meta["model"] == "ResNet"
    assert meta["config"] == json.loads(json.dumps(result.config.to_dict())) and meta["config"]["steps_per_stage"] == 3
    assert [t["label"] for t in meta["targets"]] == ["980: volcano", "11: goldfinch"]
    assert set(meta["versions"]) >= {"piikit", "torch", "timm", "python"}
    assert meta["steps_done"] == meta["total_steps"] == 6
    assert len(meta["final_probs"]) == 2 and meta["files"] == [p.name for p in paths]


def test_load_reads_back_what_save_wrote(result, tmp_path):
    result.extra["note"] = {"why": "a round trip"}
    try:
        result.save(tmp_path, prefix="batch001_")
        back = piikit.InversionResult.load(tmp_path / "batch001_result.json")
    finally:
        del result.extra["note"]
    assert torch.allclose(back.images, result.images, atol=0.5 / 255) and back.images.shape == result.images.shape
    assert back.config == result.config and back.targets == result.targets and back.seed == result.seed
    assert back.labels == result.labels and back.model_name == result.model_name
    assert torch.allclose(back.final_probs, result.final_probs, atol=1e-6)
    assert (back.steps_done, back.interrupted, back.extra["note"]) == (6, False, {"why": "a round trip"})
    assert back.history == {} and back.snapshots == []  # not saved
    back.save(tmp_path / "again")  # and what was loaded saves the same images again
    assert torch.equal(piikit.InversionResult.load(tmp_path / "again").images, back.images)
    with pytest.raises(FileNotFoundError, match="no result at .*nothing"):
        piikit.InversionResult.load(tmp_path / "again" / "nothing")


def test_load_keeps_a_models_own_class_names_and_the_older_config_names(tmp_path):
    names = ("zero", "one", "two")
    own = piikit.InversionResult(images=torch.rand(1, 1, 8, 8), targets=[2], class_names=names,
                                 config=piikit.make_config("preview"), seed=1, model_name="digits", history={},
                                 snapshots=[])
    own.save(tmp_path)
    meta = json.loads((tmp_path / "result.json").read_text())
    meta["config"]["polish_steps"] = meta["config"].pop("refine_steps")  # a result saved before the rename
    (tmp_path / "result.json").write_text(json.dumps(meta))
    back = piikit.InversionResult.load(tmp_path)
    assert back.labels == ["2: two"] and back.images.shape == (1, 1, 8, 8) and back.config == own.config


def test_show_makes_a_titled_grid(result):
    fig = result.show()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 2 and titled[0].get_title().startswith("980: volcano\np=")
    assert len(result.filmstrip(1).axes) == 2
    curves = [line for line in result.plot_history().axes[0].lines if not line.get_label().startswith("_")]
    assert [c.get_label() for c in curves] == result.labels


def test_total_steps_counts_every_phase_and_round_trips(tiny_models, tmp_path):
    # A refine() from noise runs a warm-up phase and a full-size phase; its config is the last
    # phase's, whose own total_steps is only that phase's 3 steps.
    refined = piikit.refine(tiny_models["cnn"], targets=1, preset="preview", progress=False, device="cpu",
                            warmup_steps=2, steps=3, warmup_size=32, image_size=64)
    assert refined.config.total_steps == 3
    assert refined.steps_done == refined.total_steps == refined.metadata()["total_steps"] == 5
    refined.save(tmp_path)
    assert piikit.InversionResult.load(tmp_path).total_steps == 5
    # A PII run with a refine phase: the stages and the refine steps; two runs end to end add up.
    pii = piikit.invert(tiny_models["cnn"], 1, "preview", seed=0, progress=False, stages=2, steps_per_stage=2,
                        image_size=32, refine_steps=3)
    assert pii.steps_done == pii.metadata()["total_steps"] == 7
    assert pii.followed_by(refined).metadata()["total_steps"] == 12
