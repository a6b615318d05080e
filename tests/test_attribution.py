"""Captum attributions: every method on the real Lite0 and on a tiny random ViT, targets,
Grad-CAM layers (CNN feature maps and ViT tokens), errors, state restored, and the plots.

No optimization here; the one ratio asserted on real weights was measured with
OMP_NUM_THREADS=1 and 2: Grad-CAM put 21x (cat) and 4.5x (espresso) more mass on its class's
half on the default layer, 6.6x and 2.6x on ``blocks.6`` (asserted: 2x), equal to 5 digits
across thread counts.
"""

from __future__ import annotations

import io
import warnings

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from skimage import data

import piikit
from piikit.analysis import attribution as A

matplotlib.use("Agg")


# Small windows/steps keep each Lite0 call to a second or two on a CPU.
FAST = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 4},
    "input_x_gradient": {},
    "occlusion": {"sliding_window_shapes": (3, 48, 48), "strides": 48},
    "gradcam": {},
}


def _photo(array, size: int) -> torch.Tensor:
    x = torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """chelsea (285: Egyptian cat) and coffee (967: espresso) at 96 px."""
    return torch.cat([_photo(data.chelsea(), 96), _photo(data.coffee(), 96)])


@pytest.mark.parametrize("method", A.METHODS)
def test_each_method_on_lite0_returns_the_inputs_shape(lite0, photos, method):
    attr = piikit.attribute(lite0, photos, target=[285, 967], method=method, **FAST[method])
    assert attr.shape == photos.shape
    assert attr.dtype == torch.float32
    assert torch.isfinite(attr).all()
    assert attr.abs().sum() > 0
    if method in ("saliency", "gradcam"):  # |gradient|; ReLU'd Grad-CAM
        assert (attr >= 0).all()
    # Each image gets its own map: they are not copies of one another.
    assert not torch.allclose(attr[0], attr[1])


def test_target_accepts_ints_names_lists_and_tensors(lite0, photos):
    small = F.interpolate(photos, size=(64, 64), mode="bilinear", align_corners=False)

    def sal(target):
        return piikit.attribute(lite0, small, target=target, method="saliency")

    by_index = sal(285)
    for same in ("Egyptian cat", ["Egyptian cat", "285"], torch.tensor([285, 285])):
        torch.testing.assert_close(sal(same), by_index)
    per_image = sal([285, "espresso"])
    torch.testing.assert_close(per_image[0], by_index[0])
    assert not torch.allclose(per_image[1], by_index[1])  # image 1 now explains espresso
    # None: each image's predicted class.
    with torch.no_grad():
        predicted = lite0(small).argmax(-1)
    torch.testing.assert_close(sal(None), sal(predicted))


def test_bad_targets_are_clear_errors(lite0, photos):
    with pytest.raises(ValueError, match="3 targets for 2 image"):
        piikit.attribute(lite0, photos, target=[1, 2, 3])
    with pytest.raises(piikit.errors.UnknownClassError, match="did you mean"):
        piikit.attribute(lite0, photos, target="egyptian kat")


def test_one_image_in_one_image_out(lite0, photos):
    attr = piikit.attribute(lite0, photos[0], target="Egyptian cat")
    assert attr.shape == photos[0].shape


def test_gradcam_finds_each_class_in_its_half(lite0):
    """A cat on the left, an espresso on the right: Grad-CAM for each class puts most of
    its mass on that class's half (on the default layer and on a named one)."""
    both = torch.cat([_photo(data.chelsea(), 96), _photo(data.coffee(), 96)], dim=-1)  # 96×192
    for layer in (None, "blocks.6"):
        cat = piikit.attribute(lite0, both, target=285, method="gradcam", layer=layer)[0, 0]
        cup = piikit.attribute(lite0, both, target=967, method="gradcam", layer=layer)[0, 0]
        assert cat[:, :96].sum() > 2 * cat[:, 96:].sum()
        assert cup[:, 96:].sum() > 2 * cup[:, :96].sum()


def test_gradcam_layer_by_name_prefix_or_module(lite0, photos):
    assert A.default_layer(lite0) == "bn2"  # after conv_head: the last spatial feature map
    assert "blocks.4" in A.list_layers(lite0)
    by_name = piikit.attribute(lite0, photos, 285, "gradcam", layer="blocks.4")
    torch.testing.assert_close(piikit.attribute(lite0, photos, 285, "gradcam", layer="model.blocks.4"), by_name)
    torch.testing.assert_close(piikit.attribute(lite0, photos, 285, "gradcam", layer=lite0.model.blocks[4]), by_name)
    default = piikit.attribute(lite0, photos, 285, "gradcam")
    assert not torch.allclose(default, by_name)
    # The map is one H×W map repeated over the channels.
    torch.testing.assert_close(by_name[:, 0], by_name[:, 2])


def test_unknown_layer_names_close_matches(lite0, photos):
    with pytest.raises(piikit.errors.UnknownLayerError, match=r"no layer 'block\.6'.*blocks\.6"):
        piikit.attribute(lite0, photos, 285, "gradcam", layer="block.6")
    with pytest.raises(LookupError):  # also a LookupError, like other unknown names
        piikit.attribute(lite0, photos, 285, "gradcam", layer="nope")


def test_gradcam_on_a_non_spatial_layer_says_which_methods_apply(lite0, tiny_vit, photos):
    with pytest.raises(piikit.errors.UnsupportedModelError, match=r"'classifier' outputs 1×1000.*saliency"):
        piikit.attribute(lite0, photos, 285, "gradcam", layer="classifier")
    with pytest.raises(piikit.errors.UnsupportedModelError, match=r"'head' outputs .*blocks\.5\.norm1.*occlusion"):
        piikit.attribute(tiny_vit, photos, 1, "gradcam", layer="head")


def test_unknown_method_and_misplaced_layer(lite0, photos):
    with pytest.raises(ValueError, match="did you mean saliency"):
        piikit.attribute(lite0, photos, 285, method="salency")
    with pytest.raises(ValueError, match="Grad-CAM only"):
        piikit.attribute(lite0, photos, 285, method="saliency", layer="blocks.4")
    # Aliases resolve to the same algorithm.
    torch.testing.assert_close(
        piikit.attribute(lite0, photos, 285, method="IG", n_steps=2),
        piikit.attribute(lite0, photos, 285, method="integrated_gradients", n_steps=2),
    )


@pytest.mark.parametrize("method", A.METHODS)
def test_each_method_on_a_tiny_vit(tiny_vit, method):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    kwargs = {**FAST[method], "sliding_window_shapes": (3, 32, 32), "strides": 32} if method == "occlusion" else FAST[method]
    attr = piikit.attribute(tiny_vit, images, target=[3, 7], method=method, **kwargs)
    assert attr.shape == images.shape
    assert torch.isfinite(attr).all() and attr.abs().sum() > 0


def test_vit_gradcam_default_layer_and_token_grid(tiny_vit):
    """Tokens are laid out on the patch grid after the class token: a single odd patch
    at grid position (row 2, column 7) is where the early-layer Grad-CAM stands out."""
    assert A.default_layer(tiny_vit) == "blocks.5.norm1"  # class-token ViT: not the last block's output
    x = torch.full((1, 3, 160, 160), 0.5)  # the model's mean colour: every patch alike...
    x[..., 2 * 16 : 3 * 16, 7 * 16 : 8 * 16] = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    for layer in ("patch_embed", "blocks.0"):  # an N×H×W×D embedding and an N×(1+100)×D block
        cam = piikit.attribute(tiny_vit, x, 5, "gradcam", layer=layer, relu_attributions=False)[0, 0]
        row, col = divmod(int((cam - cam.median()).abs().argmax()), 160)
        assert (row // 16, col // 16) == (2, 7), layer


def test_zero_gradcam_warns(tiny_vit):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match="zero everywhere"):
        attr = piikit.attribute(tiny_vit, x, 5, "gradcam", layer="blocks.5")  # patch outputs never reach the head
    assert not attr.any()


def test_plain_module_and_classifier_agree_and_state_is_restored(tiny_vit):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    clf = piikit.load_model(tiny_vit)
    tiny_vit.train()
    try:
        via_module = piikit.attribute(tiny_vit, x, 3, "gradcam")
        assert tiny_vit.training, "train mode restored"
        assert all(p.requires_grad for p in tiny_vit.parameters()), "parameter flags restored"
        assert not any(m._forward_hooks or m._backward_hooks for m in tiny_vit.modules()), "no hooks left"
        with pytest.raises(piikit.errors.UnsupportedModelError):
            piikit.attribute(tiny_vit, x, 3, "gradcam", layer="head")
        assert not any(m._forward_hooks for m in tiny_vit.modules()), "no hooks left after an error"
    finally:
        tiny_vit.eval()
    torch.testing.assert_close(piikit.attribute(clf, x, 3, "gradcam"), via_module)


def test_attributions_of_an_inversion_use_its_targets(lite0):
    result = piikit.invert(lite0, ["goldfinch", "volcano"], "preview", seed=0, device="cpu", progress=False,
                           stages=1, steps_per_stage=1, image_size=64)
    attr = piikit.attribute(lite0, result, method="saliency")
    assert attr.shape == result.images.shape
    torch.testing.assert_close(attr, piikit.attribute(lite0, result.images, [11, 980], method="saliency"))


def test_what_a_second_model_sees(lite0, tiny_cnn, photos):
    seen = piikit.attribute_models([lite0, tiny_cnn], photos, target=[285, 967], method="gradcam",
                                    layer={"efficientnet_lite0": "blocks.6"})
    assert list(seen) == ["efficientnet_lite0", "ResNet"]
    assert all(a.shape == photos.shape for a in seen.values())
    torch.testing.assert_close(seen["efficientnet_lite0"], piikit.attribute(lite0, photos, [285, 967], "gradcam",
                                                                              layer="blocks.6"))
    assert not torch.allclose(seen["efficientnet_lite0"], seen["ResNet"])
    twice = piikit.attribute_models([lite0, lite0], photos[:1], 285)
    assert list(twice) == ["efficientnet_lite0", "efficientnet_lite0 (2)"]


def _rendered(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def test_plot_attributions_has_three_panels_per_image(lite0, photos):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    attr = piikit.attribute(lite0, photos, [285, 967], "gradcam")
    fig = piikit.plot_attributions(photos, attr, ["285: Egyptian cat", "967: espresso"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * len(photos)
    assert fig.axes[0].get_title() == "285: Egyptian cat" and fig.axes[2].get_title() == "overlay"
    assert all(ax.images for ax in fig.axes)  # every panel drew an image
    assert _rendered(fig).startswith(b"\x89PNG")
    assert plt.get_fignums() == before  # no pyplot figure was opened (nothing to show)


def test_plot_handles_all_zero_maps_and_checks_shapes(photos):
    zero = torch.zeros_like(photos)
    fig = piikit.plot_attributions(photos, zero, sign="positive")
    assert len(fig.axes) == 6
    assert "no positive attribution" in [t.get_text() for t in fig.axes[1].texts]
    assert _rendered(fig)
    with pytest.raises(ValueError, match="do not match"):
        piikit.plot_attributions(photos, zero[:, :, :32])


def test_plot_comparison_has_one_column_per_model(photos):
    maps = {"A": torch.rand_like(photos), "B": torch.rand_like(photos), "C": torch.rand_like(photos)}
    fig = piikit.plot_model_attributions(photos, maps, ["cat", "cup"])
    assert len(fig.axes) == len(photos) * (1 + len(maps))
    assert [ax.get_title() for ax in fig.axes[1:4]] == ["A", "B", "C"]
    assert _rendered(fig)
    heat = piikit.plot_model_attributions(photos[0], {k: v[0] for k, v in maps.items()}, overlay=False)
    assert len(heat.axes) == 4


def test_importing_piikit_does_not_import_captum_or_pyplot():
    import subprocess
    import sys

    code = "import sys, piikit; print('captum' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_no_warnings_from_captum_about_gradients(lite0, photos):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        piikit.attribute(lite0, photos, 285, "saliency")
        piikit.attribute(lite0, photos, 285, "input_x_gradient")
