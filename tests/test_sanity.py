"""Sanity checks on inversions (piikit.sanity): each measurement on inputs whose answer is
known, the flags, and how a result shows and saves its report."""

from __future__ import annotations

import json

import pytest
import torch

import piikit
from piikit.analysis.sanity import (
    SanityRow, SanityThresholds, feature_similarity, judge_row, naturalness, randomized_copy, ssim,
)

TINY = dict(image_size=32, stages=2, steps_per_stage=4, ensemble=2)


@pytest.fixture(scope="module")
def cnn(tiny_cnn: torch.nn.Module) -> piikit.Classifier:
    return piikit.load_model(tiny_cnn)


@pytest.fixture(scope="module")
def vit(tiny_vit: torch.nn.Module) -> piikit.Classifier:
    return piikit.load_model(tiny_vit)


def test_ssim_is_one_for_equal_images_and_near_zero_for_unrelated_noise():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 48, 48, generator=gen), torch.rand(2, 3, 48, 48, generator=gen)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert ssim(a, b).abs().max() < 0.05
    assert torch.allclose(ssim(a, b), ssim(b, a), atol=1e-6)
    blurred = torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1)
    assert 0.05 < float(ssim(a, blurred).mean()) < 0.95  # related, not equal


def test_randomized_copy_resets_the_top_layers_only_and_leaves_the_model_and_global_rng_alone(cnn):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    state = torch.random.get_rng_state()
    top = randomized_copy(cnn, 0.0, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(v, cnn.state_dict()[k]) for k, v in before.items())  # the original is untouched
    changed = {k for k, v in top.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])}
    assert changed and all(k.startswith("model.fc.") for k in changed)  # only the classifier
    everything = randomized_copy(cnn, 1.0, seed=1)
    weights = [k for k, v in before.items() if k.endswith("weight") and v.ndim > 1]
    assert all(not torch.equal(everything.state_dict()[k], before[k]) for k in weights)
    assert torch.equal(randomized_copy(cnn, 1.0, seed=1).state_dict()["model.fc.weight"],
                       everything.state_dict()["model.fc.weight"])  # seeded


def test_naturalness_is_low_for_the_images_the_statistics_came_from_and_high_for_others(tiny_cnn):
    import copy

    net = copy.deepcopy(tiny_cnn)
    gen = torch.Generator().manual_seed(0)

    def smooth(n: int) -> torch.Tensor:  # low-frequency colour fields: this model's "natural images"
        return torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=64, mode="bilinear")

    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batches below
    net.train()
    with torch.no_grad():
        for _ in range(20):
            net(smooth(16) * 2 - 1)  # what the wrapper's normalization (0.5, 0.5) would give
    clf = piikit.load_model(net.eval(), input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    natural = naturalness(clf, smooth(4))
    noise = naturalness(clf, torch.rand(4, 3, 64, 64, generator=gen))
    assert natural.max() < noise.min()


def test_naturalness_needs_batchnorm(vit):
    with pytest.raises(ValueError, match="no BatchNorm"):
        naturalness(vit, torch.rand(1, 3, 32, 32))


def test_flags_follow_the_thresholds():
    t = SanityThresholds(randomization=0.8, transfer_rank=5, naturalness=1.0)
    clean = SanityRow(0, 1, "1: x", randomized=0.5, cascade={"top 1": 0.6}, transfer_rank=3, naturalness=0.9)
    assert judge_row(clean, t) == ()
    bad = SanityRow(0, 1, "1: x", randomized=0.8, cascade={"top 1": 0.9}, transfer_rank=6, naturalness=1.1)
    assert judge_row(bad, t) == ("randomization", "cascade", "transfer", "naturalness")
    assert judge_row(SanityRow(0, 1, "1: x"), t) == ()  # nothing computed, nothing flagged


def test_the_report_measures_two_runs_and_is_shown_and_saved(cnn, vit, tmp_path):
    result = piikit.invert(cnn, [1, 2], "preview", seed=0, device="cpu", progress=False, **TINY)
    report = piikit.sanity(cnn, result, evaluators=[vit], seeds=2, cascade=(0.0,), device="cpu")
    assert [r.target for r in report.rows] == [1, 2]
    for row in report.rows:
        assert ("randomization" in row.flags) == (row.randomized >= report.thresholds.randomization)
        assert "transfer" in row.flags  # a random evaluator does not rank the target in its top 5
        assert set(row.cascade) == {"top 1"} and row.seed_similarity is not None
        assert row.naturalness is not None  # measured in the model itself (the ViT has no BatchNorm)
    assert report.naturalness_model == cnn.name
    assert report.counts()["transfer"] == 2 and "flagged (of 2): randomization" in report.table()
    # The randomized model made a different image (the check compares two runs, not one run with itself).
    again = piikit.invert(randomized_copy(cnn, 1.0, seed=0), [1, 2], result.config, seed=0, device="cpu",
                          progress=False)
    assert not torch.equal(again.images, result.images)
    assert torch.allclose(feature_similarity([vit], result.images, again.images),
                          torch.tensor([r.randomized for r in report.rows]), atol=1e-4)
    fig = result.show()
    assert [ax.get_xlabel().replace(",\n", ", ") for ax in fig.axes[:2]] == [f"flags: {', '.join(r.flags)}" for r in report.rows]
    result.save(tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())["sanity"]
    assert saved["rows"][0]["flags"] == list(report.rows[0].flags) and saved["seeds"] == [0, 1]


def test_bad_evaluators_and_feature_images_are_refused(cnn):
    result = piikit.invert(cnn, [1], "preview", seed=0, device="cpu", progress=False, **TINY)
    grey = piikit.load_model(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                                 torch.nn.Flatten(), torch.nn.Linear(4, 10)),
                             input_size=32, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="1-channel"):
        piikit.sanity(cnn, result, evaluators=[grey])
    with pytest.raises(ValueError, match="seeds"):
        piikit.sanity(cnn, result, evaluators=[cnn], seeds=0)


@pytest.mark.slow
def test_lite0_preview_and_a_random_lite0_are_flagged_where_a_photo_is_not(lite0):
    from piikit.images import load_photo

    result = piikit.invert(lite0, ["espresso"], "preview", seed=0, device="cpu", progress=False)
    report = piikit.sanity(lite0, result, seeds=2, cascade=(), device="cpu")
    row = report.rows[0]
    assert report.evaluators == ["efficientnet_lite1", "efficientnet_lite2"]
    assert report.naturalness_model == "efficientnet_lite1"
    assert {"transfer", "naturalness"} <= set(row.flags)  # preview images are pixel noise
    photo = load_photo("coffee", 224)
    photo_row = piikit.score(report.evaluators, photo, ["espresso"])
    assert min(r["rank"] for r in photo_row) <= SanityThresholds().transfer_rank
    assert float(naturalness(piikit.load_model("efficientnet_lite1"), photo)[0]) < SanityThresholds().naturalness
    blank = randomized_copy(lite0, 1.0, seed=1)
    blank_result = piikit.invert(blank, ["espresso"], "preview", seed=0, device="cpu", progress=False)
    blank_row = piikit.sanity(blank, blank_result, seeds=1, cascade=(), device="cpu").rows[0]
    assert {"randomization", "transfer", "naturalness"} <= set(blank_row.flags)
