"""The architecture comparison (PII §5.1, Fig. 7) as a package function: models loaded from weight
files by timm name (what is missing is listed with its reason), one setting inverted on each, every
model's images scored by every model, and the Fig. 7 layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import piikit
from piikit.interfaces.architectures import ArchitectureComparison, compare_architectures, load_models, weight_file


def _save(name: str, folder: Path, suffix: str = ".safetensors") -> torch.nn.Module:
    import timm
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = timm.create_model(name, pretrained=False)
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / f"{name}{suffix}")
    else:
        torch.save(net.state_dict(), folder / f"{name}{suffix}")
    return net


def test_load_models_reads_weight_files_by_name_and_says_why_the_others_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # no hub, whatever the machine
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    vit = _save("test_vit", tmp_path)
    _save("test_resnet", tmp_path, ".pth")
    assert weight_file("test_vit", tmp_path) == tmp_path / "test_vit.safetensors"
    assert weight_file("test_vit", None) is None and weight_file("resnet50", tmp_path) is None
    models, skipped = load_models(["test_vit", "test_resnet", "resnet50"], weights_dir=tmp_path)
    assert list(models) == ["test_vit", "test_resnet"] and list(skipped) == ["resnet50"]
    assert "\n" not in skipped["resnet50"] and "checkpoint=" in skipped["resnet50"]
    # The file's weights, not a fresh random draw: the same logits as the module that was saved.
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        expected = vit.eval()((x - models["test_vit"].mean) / models["test_vit"].std)
        assert torch.allclose(models["test_vit"](x), expected, atol=1e-5)
    # A file that does not fit the architecture built is left out with the reason, not half-loaded.
    models, skipped = load_models(["test_vit"], weights_dir=tmp_path, model_kwargs={"test_vit": {"depth": 2}})
    assert not models and "does not fit" in skipped["test_vit"]


def test_compare_architectures_inverts_each_model_and_scores_every_pair(tiny_cnn, tiny_vit):
    models = {"cnn": piikit.load_model(tiny_cnn), "vit": piikit.load_model(tiny_vit)}
    c = compare_architectures(models, [1, 2], "preview", steps_per_stage=2, image_size=64, device="cpu",
                              skipped={"resnet50": "no weights"})
    assert isinstance(c, ArchitectureComparison) and list(c.results) == ["cnn", "vit"]
    assert all(r.images.shape == (2, 3, 64, 64) and r.targets == [1, 2] for r in c.results.values())
    assert {made: list(row) for made, row in c.matrix.items()} == {"cnn": ["cnn", "vit"], "vit": ["cnn", "vit"]}
    for made in c.matrix:
        for judge, cell in c.matrix[made].items():
            assert cell["prob"] == pytest.approx(sum(c.probs[made][judge]) / 2)
            assert 0.0 <= cell["top1"] <= 1.0 and cell["n"] == 2
    # "others" is the other model only: its probabilities, image by image.
    assert c.others_prob("cnn") == pytest.approx(c.probs["cnn"]["vit"])
    assert [r["model"] for r in c.rows()] == ["cnn", "vit"] and all(r["s/class"] > 0 for r in c.rows())
    fig = c.figure()
    assert len([ax for ax in fig.axes if ax.images]) == 4  # rows: models, columns: classes
    assert fig.axes[0].get_title().startswith("cnn\n")
    assert len(c.matrix_figure().axes) == 2 and c.skipped == {"resnet50": "no weights"}
    with pytest.raises(ValueError, match="at least one"):
        compare_architectures({}, [1])
