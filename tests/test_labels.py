import pytest

from piikit.errors import UnknownClassError
from piikit.labels import imagenet_classes, label, resolve_class, resolve_classes, search_classes


def test_lookup_by_index_name_and_synonym():
    assert len(imagenet_classes()) == 1000
    assert resolve_class("volcano") == 980
    assert resolve_class("Volcano ") == 980
    assert resolve_class(980) == resolve_class("980") == 980
    assert resolve_class("Carduelis carduelis") == 11
    assert label(980) == "980: volcano"
    assert resolve_classes(["volcano", 1]) == [980, 1]


def test_out_of_range_index():
    with pytest.raises(UnknownClassError, match="0..999"):
        resolve_class(1000)
    with pytest.raises(UnknownClassError, match="0..9"):
        resolve_class(10, names=[f"c{i}" for i in range(10)])


def test_ambiguous_crane_lists_both():
    with pytest.raises(UnknownClassError, match=r"134.*517"):
        resolve_class("crane")


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(UnknownClassError, match="980: volcano"):
        resolve_class("volcanoe")
    with pytest.raises(UnknownClassError, match="goldfinch"):
        resolve_class("goldfnch")


def test_search_finds_substrings_and_near_spellings():
    terriers = search_classes("terrier", limit=50)
    assert len(terriers) > 10 and all("terrier" in n.lower() for _, n in terriers)
    assert search_classes("espreso")[0][0] == 967
