import pytest
import torch

from piikit.engine.schedule import StageSchedule
from piikit.engine.schedule import paste_center


def test_paper_sizes_for_224_and_384():
    assert StageSchedule(224).sizes == (56, 84, 112, 140, 168, 196, 224)
    assert StageSchedule(224).step == 28
    assert StageSchedule(384).sizes == (96, 144, 192, 240, 288, 336, 384)


def test_zoom_center_upsamples_to_size_minus_half_step_and_pastes_in_the_middle():
    sched = StageSchedule(224)
    prev = torch.rand(1, 3, 56, 56)
    grown = sched.grow(prev, 1, torch.Generator().manual_seed(0))
    assert grown.shape == (1, 3, 84, 84)
    assert sched.paste_size(1) == 70  # 84 - 28/2
    up = torch.nn.functional.interpolate(prev, size=(70, 70), mode="bilinear", align_corners=False)
    assert torch.equal(grown[..., 7:77, 7:77], up)  # (84 - 70) / 2 = 7 px of noise each side
    border = torch.cat([grown[..., :7, :].flatten(), grown[..., 77:, :].flatten()])
    assert 0.4 < border.mean() < 0.6 and border.min() >= 0 and border.max() <= 1  # fresh uniform noise


def test_zoom_only_fills_the_whole_image():
    sched = StageSchedule(224, mode="zoom")
    prev = torch.rand(2, 3, 56, 56)
    grown = sched.grow(prev, 1)
    assert grown.shape == (2, 3, 84, 84)
    assert torch.equal(grown, torch.nn.functional.interpolate(prev, size=(84, 84), mode="bilinear", align_corners=False))


def test_center_only_keeps_the_patch_unscaled_inside_a_fixed_canvas():
    sched = StageSchedule(224, mode="center")
    canvas = sched.canvas(1, torch.Generator().manual_seed(0))
    assert canvas.shape == (1, 3, 224, 224)
    patch = torch.rand(1, 3, 56, 56)
    grown = sched.grow(patch, 1, canvas=canvas)
    assert grown.shape == (1, 3, 84, 84)
    assert torch.equal(grown[..., 14:70, 14:70], patch)
    view = sched.model_input(grown, canvas)
    assert view.shape == (1, 3, 224, 224)
    assert torch.equal(view[..., :70, :70][..., :10, :10], canvas[..., :10, :10])


def test_none_keeps_full_size_every_stage():
    sched = StageSchedule(224, mode="none")
    assert sched.sizes == (224,) * 7
    img = torch.rand(1, 3, 224, 224)
    assert torch.equal(sched.grow(img, 3), img)


def test_paste_center_keeps_gradients():
    patch = torch.rand(1, 3, 4, 4, requires_grad=True)
    paste_center(torch.zeros(1, 3, 8, 8), patch).sum().backward()
    assert torch.equal(patch.grad, torch.ones_like(patch))


def test_bad_schedule_is_rejected():
    with pytest.raises(ValueError, match="zoom"):
        StageSchedule(224, mode="spiral")


@pytest.mark.parametrize("size,most", [(32, 15), (33, 15), (224, 111)])
def test_stages_are_limited_by_the_size_with_a_message_saying_how_many_fit(size, most):
    sizes = StageSchedule(size, most).sizes
    assert len(set(sizes)) == most and sizes[0] >= 2 and sizes[-1] == size  # every stage grows the image
    with pytest.raises(ValueError, match=f"stages={most + 1} is too many for image_size={size}.*at most {most} stages"):
        StageSchedule(size, most + 1)
    assert StageSchedule(size, most + 1, mode="none").sizes == (size,) * (most + 1)  # no growth, no limit


@pytest.mark.parametrize("mode", ["zoom+center", "zoom", "center"])
def test_images_keep_their_channel_count_through_every_stage(mode):
    sched = StageSchedule(64, 3, mode, channels=1)
    g = torch.Generator().manual_seed(0)
    image, canvas = sched.initial(2, g), sched.canvas(2, g)
    assert image.shape == (2, 1, 32, 32) and (canvas is None or canvas.shape == (2, 1, 64, 64))
    for stage in (1, 2):
        image = sched.grow(image, stage, g, canvas)
        assert image.shape == (2, 1, sched.sizes[stage], sched.sizes[stage])


@pytest.mark.parametrize("border, low, high", [("grey", 0.45, 0.55), ("black", 0.0, 0.1)])
def test_center_canvas_follows_the_border_fill(border: str, low: float, high: float) -> None:
    # A noise canvas around a grey- or black-bordered image left a frame of noise in the result.
    canvas = StageSchedule(image_size=64, stages=3, mode="center").canvas(2, torch.Generator().manual_seed(0), border=border)
    assert canvas.shape == (2, 3, 64, 64)
    assert low <= canvas.min() and canvas.max() <= high
    assert canvas.std() > 0  # faint noise, so the gradient does not vanish on a flat image
