"""Photos as model inputs: ``load_photo`` keeps proportions (crops, never squashes) and
reads scikit-image's photos, files and arrays alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from piikit.images import load_photo, save_png


def _stripes() -> np.ndarray:
    """100×200 uint8: black 30-px bands left and right of white; the centre square is all white."""
    array = np.zeros((100, 200, 3), dtype=np.uint8)
    array[:, 30:170] = 255
    return array


def test_a_wide_photo_is_cropped_to_its_centre_not_squashed():
    photo = load_photo(_stripes(), 32)
    assert photo.shape == (1, 3, 32, 32)
    assert photo.min() > 0.99  # squashing would bring the black bands in


def test_a_size_pair_gives_that_height_and_width():
    assert load_photo(_stripes(), (20, 60)).shape == (1, 3, 20, 60)


def test_without_a_size_the_full_photo_comes_back_in_unit_range():
    photo = load_photo(_stripes())
    assert photo.shape == (1, 3, 100, 200)
    assert photo.max() == 1.0 and photo.min() == 0.0


def test_grayscale_and_float_arrays_become_three_equal_channels():
    gray = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    photo = load_photo(gray, 16)
    assert photo.shape == (1, 3, 16, 16)
    assert torch.equal(photo[:, 0], photo[:, 1]) and torch.equal(photo[:, 1], photo[:, 2])


def test_a_file_reads_back_as_the_array_it_was_written_from(tmp_path):
    path = tmp_path / "stripes.png"
    save_png(torch.from_numpy(_stripes()).permute(2, 0, 1).float() / 255, path)
    assert torch.equal(load_photo(path), load_photo(_stripes()))


def test_scikit_image_photos_load_by_name():
    photo = load_photo("coffee", 48)
    assert photo.shape == (1, 3, 48, 48)
    assert 0.1 < photo.mean() < 0.9  # a photo, not a blank


@pytest.mark.parametrize("source", ["no_such_photo", "_private"])
def test_an_unknown_name_says_what_was_expected(source):
    with pytest.raises(ValueError, match="neither an image file nor a photo"):
        load_photo(source)
