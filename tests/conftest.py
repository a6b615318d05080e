"""Shared fixtures: the real offline Lite0, tiny random timm models of each family, and a
``--device`` option to run the same suite on a GPU (``pytest --device cuda``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import matplotlib
import pytest
import timm
import torch

import piikit

matplotlib.use("Agg")
os.environ.setdefault("PIIKIT_SMOKE", "1")
# cuBLAS reproduces a result bit for bit only with a fixed workspace; it reads this before
# its first call (the ``reproducible_device`` fixture needs it).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device for the inversion tests (cpu, cuda, mps)")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.config.getoption("--device"))


@pytest.fixture
def reproducible_device(device: torch.device) -> Iterator[torch.device]:
    """The device, with PyTorch's deterministic kernels on a GPU for the test's duration: CUDA's
    atomic-add kernels (convolution and resampling backward) sum in a varying order, so the
    same seed gives images that differ in the last bits there unless these are asked for."""
    if device.type == "cpu":
        yield device
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield device
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def lite0() -> piikit.Classifier:
    """The embedded default model with its real ImageNet weights."""
    return piikit.load_model("efficientnet_lite0")


def _tiny(name: str, keep_blocks: int | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    if keep_blocks is not None:
        model.blocks = model.blocks[:keep_blocks]
    head = model.get_classifier()
    if isinstance(head, torch.nn.Linear) and not head.weight.any():
        # timm zero-initialises some heads (MLP-Mixer, ResMLP), which would make every
        # logit 0 and every gradient vanish in a random model.
        torch.nn.init.normal_(head.weight, std=0.02)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, torch.nn.Module]:
    """Small randomly initialised timm models, one per architecture family: a CNN with
    BatchNorm, a ViT, an MLP-Mixer and a ResMLP (the last two cut to two blocks)."""
    return {
        "cnn": _tiny("test_resnet"),
        "vit": _tiny("test_vit"),
        "mixer": _tiny("mixer_s16_224", keep_blocks=2),
        "resmlp": _tiny("resmlp_12_224", keep_blocks=2),
    }


@pytest.fixture(scope="session")
def tiny_cnn(tiny_models: dict[str, torch.nn.Module]) -> torch.nn.Module:
    return tiny_models["cnn"]


@pytest.fixture(scope="session")
def tiny_vit(tiny_models: dict[str, torch.nn.Module]) -> torch.nn.Module:
    return tiny_models["vit"]
