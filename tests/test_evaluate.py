"""Scoring images with evaluator models: a real photo is recognised by every offline model,
noise is not, and a (short) Lite0 inversion scores above noise under Lite1.

Margins of the preview test, measured over seeds 0-3 x OMP_NUM_THREADS=1 and 2 (AVX-512 CPU):
Lite1's mean target probability on the two Lite0 ``preview`` images was 46x-841x its value on
noise (asserted: 3x), and each image's target rank was 1-26 against 121-288 on noise.
"""

from __future__ import annotations

import json

import pytest
import torch
from skimage import data

import piikit
from piikit.analysis.evaluate import default_evaluators, format_scores, score, summarize, tv_per_pixel

LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]



@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    """scikit-image's cat photo, 1×3×300×451 in [0, 1]: class 285, Egyptian cat."""
    return torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    return torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def preview(lite0) -> piikit.InversionResult:
    return piikit.invert(lite0, ["goldfish", "volcano"], "preview", seed=0, device="cpu", progress=False)


def test_a_real_photo_is_top1_under_every_offline_model(chelsea):
    rows = score(LITES, chelsea, 285, device="cpu")
    assert [r["evaluator"] for r in rows] == LITES
    assert [r["size"] for r in rows] == [[224, 224], [240, 240], [260, 260]]  # each model's own input size
    for r in rows:
        assert r["rank"] == 1 and r["top1"] and r["top5"], r
        assert r["prob"] > 0.5
        assert r["label"] == "285: Egyptian cat"
        assert r["tv"] < 0.1  # a photo is smooth


def test_noise_is_not_recognised(noise):
    rows = score(LITES, noise, [285, 980], device="cpu")
    assert len(rows) == 2 * len(LITES)
    assert not any(r["top1"] for r in rows)
    assert all(r["prob"] < 0.05 for r in rows)
    assert all(r["tv"] == pytest.approx(1 / 3, abs=0.01) for r in rows)  # E|U - U'| = 1/3


def test_preview_inversions_score_above_noise_under_another_model(preview, noise):
    assert preview.model_name == "efficientnet_lite0"
    inv = score("efficientnet_lite1", preview.images, preview.targets, device="cpu")
    ref = score("efficientnet_lite1", noise[: len(preview.targets)], preview.targets, device="cpu")
    assert summarize(inv)["efficientnet_lite1"]["prob"] > 3 * summarize(ref)["efficientnet_lite1"]["prob"]
    assert all(a["rank"] < b["rank"] for a, b in zip(inv, ref))


def test_result_score_uses_the_other_models_and_save_writes_them(preview, tmp_path):
    assert default_evaluators("efficientnet_lite0") == ["efficientnet_lite1", "efficientnet_lite2"]
    assert default_evaluators("resnet50") == LITES
    rows = preview.score(device="cpu")
    try:
        assert {r["evaluator"] for r in rows} == {"efficientnet_lite1", "efficientnet_lite2"}
        assert len(rows) == 2 * len(preview.targets)
        assert preview.scores is rows
        preview.save(tmp_path)
        saved = json.loads((tmp_path / "result.json").read_text())
        assert saved["scores"] == json.loads(json.dumps(rows))
    finally:
        preview.scores = None


def test_score_takes_a_result_with_its_targets(preview):
    try:
        rows = score("efficientnet_lite1", preview, device="cpu")
        assert [r["target"] for r in rows] == list(preview.targets) and preview.scores == rows
        assert rows == score("efficientnet_lite1", preview.images, preview.targets, device="cpu")
        with pytest.raises(TypeError, match="brings its own targets"):
            score("efficientnet_lite1", preview, [1])
        # The older order (images, targets, evaluators) and keyword, for one release, with a warning.
        with pytest.warns(DeprecationWarning, match=r"score\(models, images, targets\)"):
            assert score(preview.images, preview.targets, "efficientnet_lite1", device="cpu") == rows
        with pytest.warns(DeprecationWarning, match=r"score\(models=...\)"):
            assert score(preview, evaluators="efficientnet_lite1", device="cpu") == rows
        with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="brings its own targets"):
            score(preview, "efficientnet_lite1")
    finally:
        preview.scores = None
    with pytest.raises(TypeError, match="target classes"):
        score(None, preview.images)


def test_resize_false_feeds_images_as_they_are(chelsea):
    as_is = score(["efficientnet_lite2"], chelsea, 285, device="cpu", resize=False)[0]
    native = score(["efficientnet_lite2"], chelsea, 285, device="cpu")[0]
    assert as_is["size"] == [300, 451] and native["size"] == [260, 260]
    assert as_is["top1"] and as_is["prob"] != pytest.approx(native["prob"], abs=1e-4)


def test_targets_repeat_names_resolve_and_sizes_are_checked(chelsea):
    two = torch.cat([chelsea, chelsea])
    rows = score("efficientnet_lite0", two, "Egyptian cat", device="cpu")
    assert [(r["image"], r["target"]) for r in rows] == [(0, 285), (1, 285)]
    assert score("efficientnet_lite0", chelsea[0], 285, device="cpu")[0]["top1"]  # one 3×H×W image
    with pytest.raises(ValueError, match="2 images but 3 targets"):
        score("efficientnet_lite0", two, [1, 2, 3])
    with pytest.raises(ValueError, match="efficientnet_lite0 takes 3-channel images, but the images have 1 channel"):
        score("efficientnet_lite0", torch.rand(1, 1, 32, 32), 1)


def test_evaluator_as_a_module_and_class_range_checked(tiny_cnn):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    rows = score(tiny_cnn, images, [1, 2], device="cpu")
    assert {r["evaluator"] for r in rows} == {"ResNet"}
    assert all(0 <= r["prob"] <= 1 and 1 <= r["rank"] <= 1000 for r in rows)
    ten_way = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                  torch.nn.Linear(4, 10))
    # Targets resolve against the evaluator's own classes (its class_names).
    with pytest.raises(piikit.errors.UnknownClassError, match="out of range"):
        score(ten_way, images, [1, 500], device="cpu")


def test_tv_per_pixel():
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert tv_per_pixel(flat).tolist() == [0.0]
    stripes = torch.zeros(1, 3, 8, 8)
    stripes[..., ::2] = 1.0  # every horizontal neighbour differs by 1, no vertical one does
    assert tv_per_pixel(stripes).item() == pytest.approx(0.5)


def _row(evaluator, label, top1, top5, prob, tv=0.1):
    return {"evaluator": evaluator, "image": 0, "target": 0, "label": label, "prob": prob, "rank": 1 if top1 else 9,
            "top1": top1, "top5": top5, "tv": tv}


def test_summarize_per_evaluator_and_per_class():
    rows = [_row("A", "1: x", True, True, 0.9), _row("A", "2: y", False, True, 0.3, tv=0.3),
            _row("B", "1: x", False, False, 0.1), _row("B", "2: y", False, True, 0.2)]
    by_model = summarize(rows)
    assert list(by_model) == ["A", "B"]
    assert by_model["A"] == pytest.approx({"n": 2, "top1": 0.5, "top5": 1.0, "prob": 0.6, "tv": 0.2})
    assert by_model["B"] == pytest.approx({"n": 2, "top1": 0.0, "top5": 0.5, "prob": 0.15, "tv": 0.1})
    by_class = summarize(rows, by="label")
    assert by_class["1: x"] == pytest.approx({"n": 2, "top1": 0.5, "top5": 0.5, "prob": 0.5, "tv": 0.1})
    text = format_scores(rows)
    assert "1: x" in text and "mean prob" in text
    assert text.splitlines()[-2].split() == ["A", "2", "0.50", "1.00", "0.600", "0.200", "?"]


def test_predict_gives_k_classes_per_image_best_first(lite0):
    from piikit.images import load_photo

    rows = piikit.predict(lite0, torch.cat([load_photo(p, 224) for p in ("coffee", "chelsea")]), k=3, device="cpu")
    assert [(r["image"], r["rank"]) for r in rows] == [(i, k) for i in (0, 1) for k in (1, 2, 3)]
    assert (rows[0]["class"], rows[0]["label"]) == (967, "967: espresso")
    assert rows[3]["class"] == 285
    assert all(a["prob"] >= b["prob"] for a, b in zip(rows, rows[1:]) if a["image"] == b["image"])


def test_predict_refuses_more_classes_than_the_model_has(lite0, noise):
    with pytest.raises(ValueError, match="k must be"):
        piikit.predict(lite0, noise, k=1001, device="cpu")


def _always(cls: int) -> piikit.Classifier:
    """A 10-way classifier that says ``cls`` whatever the image."""
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.nn.functional.one_hot(torch.tensor(cls), 10).float() * 5)
    return piikit.load_model(net, input_size=8)


def test_cross_matrix_scores_every_result_with_every_judge_under_the_callers_keys():
    from types import SimpleNamespace

    from piikit.analysis.evaluate import cross_matrix

    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    results = {"a": SimpleNamespace(images=images, targets=[0, 0]), "b": SimpleNamespace(images=images, targets=[1, 1])}
    judges = {"says0": _always(0), "says1": _always(1)}  # both wrap the same class, so their names collide
    matrix = cross_matrix(results, judges)
    assert list(matrix) == ["a", "b"] and all(list(row) == ["says0", "says1"] for row in matrix.values())
    assert [[matrix[m][j]["top1"] for j in judges] for m in results] == [[1.0, 0.0], [0.0, 1.0]]
    assert matrix["a"]["says0"]["n"] == 2 and matrix["a"]["says0"]["prob"] > 0.9 > 0.1 > matrix["a"]["says1"]["prob"]
