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


def test_show_makes_a_titled_grid(result):
    fig = result.show()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 2 and titled[0].get_title().startswith("980: volcano\np=")
    assert len(result.filmstrip(1).axes) == 2
    curves = [line for line in result.plot_history().axes[0].lines if not line.get_label().startswith("_")]
    assert [c.get_label() for c in curves] == result.labels
