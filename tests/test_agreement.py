"""Map agreement (piikit.analysis.agreement): the correlation of two attribution maps."""

from __future__ import annotations

import pytest
import torch

import piikit
from piikit.analysis.agreement import agreement_rows, map_agreement, saliency_map


def test_exported_lazily():
    assert piikit.map_agreement is map_agreement
    assert piikit.agreement_rows is agreement_rows


def test_same_map_agrees_and_opposite_map_disagrees():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 16, 16, generator=g)
    assert torch.allclose(map_agreement(a, a), torch.ones(3), atol=1e-5)
    assert torch.allclose(map_agreement(a, -a), torch.ones(3), atol=1e-5)  # signs do not matter: |map|
    flipped = a.abs().sum(1, keepdim=True).amax() - a.abs().sum(1, keepdim=True)
    assert torch.allclose(map_agreement(a, flipped), -torch.ones(3), atol=1e-5)


def test_equals_pearson_correlation_and_ignores_scale():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    expected = [float(torch.corrcoef(torch.stack([a[i].flatten(), b[i].flatten()]))[0, 1]) for i in range(2)]
    assert map_agreement(a, b).tolist() == pytest.approx(expected, abs=1e-5)
    assert map_agreement(a, 100 * b).tolist() == pytest.approx(expected, abs=1e-5)


def test_channels_summed_and_other_resolution_resized():
    a = torch.zeros(1, 3, 8, 8)
    a[..., :4, :] = 1.0  # top half
    b = torch.zeros(1, 1, 4, 4)
    b[..., :2, :] = 5.0  # top half at half the resolution
    assert saliency_map(a).shape == (1, 8, 8)
    assert float(map_agreement(a, b)[0]) > 0.9


def test_constant_map_gives_zero_not_nan():
    out = map_agreement(torch.ones(2, 1, 4, 4), torch.rand(2, 1, 4, 4))
    assert out.tolist() == [0.0, 0.0]


def test_mismatched_image_counts_fail():
    with pytest.raises(ValueError, match="images"):
        map_agreement(torch.rand(2, 1, 4, 4), torch.rand(3, 1, 4, 4))


def test_rows_one_per_method_and_other_model():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    rows = agreement_rows({"gradcam": {"lite0": a, "lite2": a}, "saliency": {"lite0": a, "lite2": b}},
                          ["volcano", "espresso"])
    assert [r["method"] for r in rows] == ["gradcam", "saliency"]
    assert rows[0]["models"] == "lite0 vs lite2"
    assert rows[0]["volcano"] == rows[0]["espresso"] == rows[0]["mean"] == 1.0
    with pytest.raises(ValueError, match="two models"):
        agreement_rows({"gradcam": {"lite0": a}}, ["volcano", "espresso"])


def test_format_table_prints_the_rows():
    from piikit.tables import format_table

    rows = agreement_rows({"gradcam": {"lite0": torch.ones(1, 1, 2, 2) + torch.eye(2), "b": torch.eye(2)[None]}}, ["x"])
    text = format_table(rows)
    assert text.splitlines()[0].split() == ["method", "models", "x", "mean"]
    assert "lite0 vs b" in text and "1.00" in text


def test_region_share_is_the_attribution_mass_inside_the_mask():
    from piikit.analysis.agreement import region_share

    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2, :2] = True
    inside = torch.zeros(1, 1, 4, 4)
    inside[..., 0, 0] = -3.0  # signs do not matter: |attribution|
    even = torch.ones(1, 2, 4, 4)
    half = torch.zeros(1, 1, 4, 4)
    half[..., 0, 1], half[..., 3, 3] = 1.0, 1.0
    shares = region_share(torch.cat([inside.expand(1, 2, 4, 4), even, half.expand(1, 2, 4, 4)]), mask)
    assert shares.tolist() == pytest.approx([1.0, 0.25, 0.5])
    assert region_share(torch.zeros(1, 1, 4, 4), mask).tolist() == [0.0]
    with pytest.raises(ValueError, match="mask"):
        region_share(inside, torch.ones(8, 8, dtype=torch.bool))


def test_format_spread_gives_mean_deviation_and_range():
    from piikit.tables import format_spread

    assert format_spread([0.1, 0.2, 0.3]) == "0.200 ± 0.100 (seeds 0.100..0.300)"
    assert format_spread([0.5], digits=1) == "0.5 ± 0.0 (seeds 0.5..0.5)"
    with pytest.raises(ValueError):
        format_spread([])


def test_recorded_matrices_reads_the_architectures_record():
    from piikit.interfaces.matrix_plot import recorded_matrices

    cell = {"top1": 0.5, "top1_spread": 0.1, "prob": 0.4, "prob_spread": 0.0}
    record = {"trios": {"robust": {"methods": {
        "di": {"summary": {"cnn": {"cnn": cell}}, "errors": {"vit": "UnsupportedModelError: no BatchNorm"}},
        "pii": {"summary": {"cnn": {"cnn": cell, "vit": cell}, "vit": {"cnn": cell, "vit": cell}}, "errors": {}},
        "broken": {"errors": {"cnn": "RuntimeError"}}}}}}
    matrices, notes = recorded_matrices(record, "robust", {"pii": "PII", "di": "DI", "ce": "CE", "broken": "X"},
                                        refused="no BN")
    assert list(matrices) == ["PII", "DI", "X"]  # the labels' order; "ce" was not recorded
    assert matrices["PII"]["vit"]["cnn"] == cell and matrices["X"] == {}
    assert notes == {"PII": {}, "DI": {"vit": "no BN"}, "X": {"cnn": "no BN"}}
    with pytest.raises(KeyError):
        recorded_matrices(record, "standard", {"pii": "PII"})
