import socket
import time
from types import SimpleNamespace

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import piikit
from piikit.errors import HubUnavailableError, ModelLoadError, UnknownModelError, UnsupportedModelError
from piikit.models import OFFLINE_MODELS


def _photo(name: str) -> torch.Tensor:
    from skimage import data

    img = torch.tensor(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)


@pytest.mark.parametrize("photo,expected", [("chelsea", 285), ("coffee", 967)])
def test_lite0_weights_map_onto_timm_and_classify_real_photos(lite0, photo, expected):
    with torch.no_grad():
        probs = lite0(_photo(photo)).softmax(-1)
    assert probs.argmax().item() == expected
    assert probs.max() > 0.5


def test_lite0_wrapper_reads_the_models_own_config(lite0):
    assert lite0.name == "efficientnet_lite0"
    assert lite0.input_size == (224, 224) and not lite0.fixed_input_size
    assert lite0.num_classes == 1000 and lite0.class_names[980] == "volcano"
    assert torch.allclose(lite0.mean.flatten(), torch.tensor([0.5] * 3))
    assert not any(p.requires_grad for p in lite0.parameters())
    assert not lite0.training


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_other_offline_models_load_and_classify(name):
    model = piikit.load_model(name)
    with torch.no_grad():
        assert model(_photo("chelsea")).argmax().item() == 285


def test_mapping_checks_catch_a_wrong_architecture(monkeypatch):
    from piikit.models import loading as models

    entry = OFFLINE_MODELS["efficientnet_lite0"]
    monkeypatch.setitem(OFFLINE_MODELS, "efficientnet_lite0",
                        models._OfflineWeights(entry.package, entry.locator, "tf_efficientnet_lite1"))
    with pytest.raises(ModelLoadError, match="does not fit|tensors"):
        piikit.load_model("efficientnet_lite0")


def test_unknown_model_suggests_the_nearest():
    with pytest.raises(UnknownModelError, match="efficientnet_lite0"):
        piikit.load_model("efficientnet_lite")
    with pytest.raises(UnknownModelError, match="resnet18"):
        piikit.load_model("resnet1")


def test_pretrained_without_a_hub_fails_fast_with_advice(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="pretrained=False"):
        piikit.load_model("resnet18")  # names load pretrained weights by default
    with pytest.raises(HubUnavailableError, match="offline model"):
        piikit.load_model("torchvision:resnet18")
    assert time.perf_counter() - start < 10


def test_timm_and_torchvision_names_without_weights():
    vit = piikit.load_model("test_vit", pretrained=False)
    assert vit.fixed_input_size and vit.input_size == (160, 160)
    tv = piikit.load_model("torchvision:mobilenet_v3_small", pretrained=False)
    assert tv.num_classes == 1000 and not tv.fixed_input_size
    assert tv(torch.rand(1, 3, 96, 96)).shape == (1, 1000)


def test_fixed_size_models_get_resized_inputs(tiny_vit):
    clf = piikit.load_model(tiny_vit)
    assert clf.fixed_input_size
    assert clf(torch.rand(2, 3, 56, 56)).shape == (2, 1000)


class _Net(nn.Module):
    """A user model of its own: input size fixed by a Linear layer, output in various forms."""

    def __init__(self, form: str = "tensor", classes: int = 10) -> None:
        super().__init__()
        self.form = form
        self.fc = nn.Linear(3 * 32 * 32, classes)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        return {"tensor": logits, "tuple": (logits, x), "dict": {"logits": logits},
                "object": SimpleNamespace(logits=logits), "map": logits[:, :, None, None].expand(-1, -1, 2, 2),
                "string": "oops"}[self.form]


@pytest.mark.parametrize("form", ["tensor", "tuple", "dict", "object"])
def test_user_modules_with_any_logits_output(form):
    clf = piikit.load_model(_Net(form), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=32)
    assert clf.num_classes == 10 and clf.fixed_input_size  # probing found the Linear needs 32x32
    assert clf.class_names[3] == "class 3"
    out = clf(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("form,match", [("map", "N×classes"), ("string", "not logits")])
def test_outputs_that_are_not_logits_are_rejected(form, match):
    with pytest.raises(UnsupportedModelError, match=match):
        piikit.load_model(_Net(form), input_size=32)


def test_normalization_is_applied_inside_the_wrapper():
    net = _Net()
    clf = piikit.load_model(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=32)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(clf(x), net((x - 0.5) / 0.25))


def test_checkpoints_load_safely(tmp_path, tiny_cnn):
    state = timm.create_model("test_resnet").state_dict()
    torch.save(state, tmp_path / "weights.pth")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "weights.safetensors"))
    for file in ("weights.pth", "weights.safetensors"):
        clf = piikit.load_model("test_resnet", checkpoint=tmp_path / file)
        assert torch.equal(clf.model.state_dict()["fc.weight"], state["fc.weight"])
    with pytest.raises(ModelLoadError, match="architecture"):
        piikit.load_model(tmp_path / "weights.pth")
    with pytest.raises(ModelLoadError, match="does not fit"):
        piikit.load_model("test_vit", checkpoint=tmp_path / "weights.pth")

    torch.save(tiny_cnn, tmp_path / "whole.pt")
    with pytest.raises(ModelLoadError, match="trust_pickle"):
        piikit.load_model(tmp_path / "whole.pt")
    clf = piikit.load_model(tmp_path / "whole.pt", trust_pickle=True)
    assert clf.num_classes == 1000
    with pytest.raises(ModelLoadError, match="no checkpoint"):
        piikit.load_model("test_resnet", checkpoint=tmp_path / "missing.pth")


# ------------------------------------------------------------------ input channels other than 3
def _gray_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_channels_are_read_from_the_first_convolution():
    clf = piikit.load_model(_gray_cnn(), input_size=8, mean=(0.5,), std=(0.25,))
    assert clf.in_chans == 1 and clf.mean.shape == (1, 1, 1, 1)
    x = torch.rand(2, 1, 8, 8)
    assert torch.allclose(clf(x), clf.model((x - 0.5) / 0.25))
    # No statistics given: timm's RGB defaults averaged into one value per channel.
    plain = piikit.load_model(_gray_cnn(), input_size=8)
    assert plain.in_chans == 1 and plain.mean.item() == pytest.approx(sum(timm.data.IMAGENET_DEFAULT_MEAN) / 3)


def test_channels_of_a_model_without_convolutions_are_found_by_probing():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))  # 8×8 grayscale digits, say
    clf = piikit.load_model(mlp, input_size=8, mean=(0.5,), std=(0.5,))
    assert clf.in_chans == 1 and clf.fixed_input_size
    assert clf(torch.rand(3, 1, 16, 16)).shape == (3, 10)  # resized to 8×8 inside


def test_in_chans_builds_timm_models_and_per_channel_statistics():
    four = piikit.load_model("test_resnet", pretrained=False, in_chans=4, mean=(0.1, 0.2, 0.3, 0.4), std=0.5)
    assert four.in_chans == 4 and four.model.conv1[0].in_channels == 4
    assert four.mean.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4]) and four.std.flatten().tolist() == [0.5] * 4
    assert four(torch.rand(1, 4, 32, 32)).shape == (1, 1000)


def test_channel_mismatches_are_one_line_errors():
    with pytest.raises(ValueError, match="mean has 3 values but the model takes 1 input channel"):
        piikit.load_model(_gray_cnn(), input_size=8, mean=(0.5, 0.5, 0.5), std=(0.5,))
    clf = piikit.load_model(_gray_cnn(), input_size=8)
    with pytest.raises(ValueError, match=r"takes N×1×H×W images, got shape \(1, 3, 8, 8\)"):
        clf(torch.rand(1, 3, 8, 8))
    with pytest.raises(UnsupportedModelError, match="does not run on a 2×8×8 image.*in_chans="):
        piikit.load_model(_gray_cnn(), input_size=8, in_chans=2)


def test_probing_a_module_does_not_swallow_unexpected_errors():
    """load_model tries smaller inputs to learn whether a module needs a fixed size; only
    shape errors mean "no", anything else is the module's own failure and propagates."""
    class Picky(torch.nn.Module):
        def forward(self, x):
            if x.shape[-1] < 32:
                raise OSError("disk on fire")
            return torch.zeros(len(x), 10)

    with pytest.raises(OSError, match="disk on fire"):
        piikit.load_model(Picky(), input_size=32, mean=(0.5,), std=(0.5,), in_chans=3)
