"""Grayscale (1-channel) models and images through the analysis layer: score, the
attribution probes and plots, compare; and a custom model's own class names."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import timm
import torch

import piikit
from piikit.analysis.attribution import attribute, attribute_models, default_layer
from piikit.analysis.evaluate import format_scores, score
from piikit.errors import UnknownClassError
from piikit.interfaces.attribution_plots import plot_attributions

DIGITS = [f"digit {i}" for i in range(10)]


@pytest.fixture(scope="module")
def gray_cnn() -> piikit.Classifier:
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10).eval()
    return piikit.load_model(net, input_size=32, mean=(0.5,), std=(0.5,), class_names=DIGITS)


@pytest.fixture(scope="module")
def gray_vit() -> piikit.Classifier:
    torch.manual_seed(1)
    net = timm.create_model("test_vit", pretrained=False, in_chans=1, num_classes=10, img_size=32).eval()
    return piikit.load_model(net, input_size=32, mean=(0.5,), std=(0.5,), class_names=DIGITS)


def test_score_one_channel_and_class_names(gray_cnn, gray_vit):
    images = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = score([gray_cnn, gray_vit], images, ["digit 3", 4, "digit 7"], device="cpu")
    assert len(rows) == 6 and {r["evaluator"] for r in rows} == {gray_cnn.name, gray_vit.name}
    assert [r["target"] for r in rows[:3]] == [3, 4, 7]
    assert rows[0]["label"] == "3: digit 3"
    assert all(0 <= r["prob"] <= 1 and 1 <= r["rank"] <= 10 for r in rows)
    assert "3: digit 3" in format_scores(rows)


def test_score_channel_mismatch_is_one_line_naming_both(gray_cnn, tiny_cnn):
    with pytest.raises(ValueError, match=r"takes 1-channel images, but the images have 3 channel") as err:
        score(gray_cnn, torch.rand(1, 3, 32, 32), 1, device="cpu")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"takes 3-channel images, but the images have 1 channel"):
        score(tiny_cnn, torch.rand(1, 1, 32, 32), 1, device="cpu")


def test_unknown_class_name_of_a_custom_model(gray_cnn):
    with pytest.raises(UnknownClassError, match=r"did you mean .\d: digit \d"):
        score(gray_cnn, torch.rand(1, 1, 32, 32), "digit three", device="cpu")
    assert piikit.resolve_class("digit 5", gray_cnn.class_names) == 5
    assert piikit.search_classes("digit", gray_cnn.class_names)[0][0] == 0


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion", "gradcam"])
def test_attribution_probes_one_channel(gray_cnn, method):
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    kwargs = {"n_steps": 4} if method == "integrated_gradients" else {}
    attr = attribute(gray_cnn, images, target="digit 2", method=method, **kwargs)
    assert attr.shape == images.shape and torch.isfinite(attr).all()


def test_default_layer_and_compare_one_channel(gray_cnn, gray_vit):
    assert default_layer(gray_cnn) and default_layer(gray_vit)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    out = attribute_models({"cnn": gray_cnn, "vit": gray_vit}, images, target=[1, 2], method="gradcam")
    assert [tuple(a.shape) for a in out.values()] == [(2, 1, 32, 32)] * 2
    fig = plot_attributions(images, out["cnn"])
    assert len(fig.axes) >= 6


def test_invert_compare_and_result_titles_with_class_names(gray_cnn, gray_vit, tmp_path):
    cmp = piikit.compare_settings(gray_cnn, "digit 7", {"pixels": {}, "lowres": {"param": "lowres", "border": "black"}},
                         "preview", image_size=32, stages=2, steps_per_stage=3, ensemble=2)
    assert cmp.images().shape == (2, 1, 32, 32)
    assert cmp.show()._suptitle.get_text() == "7: digit 7"
    assert set(cmp.score([gray_vit], device="cpu")) == {"pixels", "lowres"}
    result = cmp.results["lowres"]
    assert result.labels == ["7: digit 7"]
    assert any("digit_7" in p.name for p in result.save(tmp_path))
    fig = result.show()
    assert "digit 7" in " ".join(ax.get_title() for ax in fig.axes)


def test_region_contrast_and_matrix_plot():
    from piikit.analysis.evaluate import region_contrast
    from piikit.interfaces.matrix_plot import off_diagonal_mean, plot_matrices

    x = torch.full((2, 1, 16, 16), 0.2)
    x[0, :, -5:-1, -5:-1] = 1.0
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[-5:-1, -5:-1] = True
    c = region_contrast(x, mask)
    assert c[0] == pytest.approx(0.8) and c[1] == pytest.approx(0.0)
    matrix = {"cnn": {"cnn": {"top1": 1.0, "top1_spread": 0.0}, "vit": {"top1": 0.4, "top1_spread": 0.2}},
              "vit": {"cnn": 0.8, "vit": 1.0}}
    assert off_diagonal_mean(matrix) == pytest.approx(0.6)
    fig = plot_matrices({"PII": matrix, "DI": {"cnn": matrix["cnn"], "vit": None}}, notes={"DI": {"vit": "refused"}})
    assert len(fig.axes) == 3 and "0.60" in fig.axes[0].get_title()
    assert any(t.get_text() == "refused" for t in fig.axes[1].texts)


def test_unknown_name_hint_points_at_the_models_own_names(gray_cnn):
    with pytest.raises(UnknownClassError, match=r"search_classes\(WORD, model.class_names\)"):
        piikit.invert(gray_cnn, "digit ten", "preview", progress=False)
    with pytest.raises(UnknownClassError, match="piikit classes --search"):
        piikit.resolve_class("volcanoo")
