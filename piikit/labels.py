"""ImageNet-1k class names: by index, by name, and fuzzy search.

The names come from timm's bundled ``ImageNetInfo`` (no download). Each class has a
comma-separated list of synonyms ("goldfinch, Carduelis carduelis"); the first one is the
short name. Two classes share the short name "crane" (134, the bird, and 517, the machine),
which is why piikit shows labels as ``"idx: name"``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import lru_cache

from piikit.errors import UnknownClassError

__all__ = ["imagenet_classes", "resolve_class", "resolve_classes", "search_classes", "label"]


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k descriptions in index order, e.g. ``[980] == "volcano"``."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def _synonyms(description: str) -> list[str]:
    return [s.strip().lower() for s in description.split(",") if s.strip()]


def label(index: int, names: Sequence[str] | None = None) -> str:
    """``"980: volcano"``: the index and the class's short name."""
    names = imagenet_classes() if names is None else names
    return f"{index}: {names[index].split(',')[0].strip()}"


def search_classes(query: str, names: Sequence[str] | None = None, limit: int = 10) -> list[tuple[int, str]]:
    """Classes whose names contain ``query`` (any synonym), else the closest spellings.

    >>> search_classes("goldfi")[:1]
    [(11, 'goldfinch, Carduelis carduelis')]
    """
    names = imagenet_classes() if names is None else names
    q = query.strip().lower()
    hits = [(i, n) for i, n in enumerate(names) if any(q in s for s in _synonyms(n))]
    # Exact synonym matches first, then names starting with the query, then the rest.
    hits.sort(key=lambda h: (q not in _synonyms(h[1]), not any(s.startswith(q) for s in _synonyms(h[1])), h[0]))
    if hits:
        return hits[:limit]
    by_synonym = {s: i for i, n in enumerate(names) for s in _synonyms(n)}
    close = difflib.get_close_matches(q, list(by_synonym), n=limit, cutoff=0.6)
    seen: dict[int, str] = {}
    for s in close:
        seen.setdefault(by_synonym[s], names[by_synonym[s]])
    return list(seen.items())[:limit]


def resolve_class(target: int | str, names: Sequence[str] | None = None) -> int:
    """Map a class index or name to an index, with a helpful error otherwise.

    Accepts an int, a string of digits, or any synonym of a class name (case-insensitive).

    >>> resolve_class("volcano"), resolve_class(980), resolve_class("Carduelis carduelis")
    (980, 980, 11)
    """
    names = imagenet_classes() if names is None else names
    n = len(names)
    if isinstance(target, bool):
        raise UnknownClassError(f"class must be an index or a name, not {target!r}")
    if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
        index = int(target)
        if not 0 <= index < n:
            raise UnknownClassError(f"class index {index} is out of range: this model has classes 0..{n - 1}")
        return index
    if not isinstance(target, str):
        raise UnknownClassError(f"class must be an index or a name, not {type(target).__name__}")
    q = target.strip().lower()
    exact = [i for i, name in enumerate(names) if q in _synonyms(name)]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        options = ", ".join(f"{i} ({names[i]})" for i in exact)
        raise UnknownClassError(f"class name {target!r} is ambiguous: it names classes {options}; pass the index")
    suggestions = search_classes(target, names, limit=5)
    hint = "; did you mean " + ", ".join(f"'{label(i, names)}'" for i, _ in suggestions) + "?" if suggestions else ""
    where = ("`piikit classes --search WORD`" if tuple(names) == imagenet_classes()
             else "`piikit.search_classes(WORD, model.class_names)`")  # a model's own class names
    raise UnknownClassError(f"unknown class {target!r}{hint} (search with {where})")


def resolve_classes(targets: int | str | Sequence[int | str], names: Sequence[str] | None = None) -> list[int]:
    """:func:`resolve_class` over one target or a sequence of them."""
    if isinstance(targets, (int, str)):
        targets = [targets]
    resolved = [resolve_class(t, names) for t in targets]
    if not resolved:
        raise UnknownClassError("no target class given")
    return resolved
