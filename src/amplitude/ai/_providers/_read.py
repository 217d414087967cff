"""Small, total readers shared by provider modules: SDK objects and plain dicts alike."""

from __future__ import annotations

from typing import Any

PREVIEW_CHARS = 500


def get(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``; None when absent (responses may be partial)."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def path(obj: Any, *names: str) -> Any:
    for name in names:
        obj = get(obj, name)
        if obj is None:
            return None
    return obj


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def first_int(obj: Any, *paths: tuple[str, ...]) -> int | None:
    """The int at the first of `paths` that holds one (0 included)."""
    for names in paths:
        value = as_int(path(obj, *names))
        if value is not None:
            return value
    return None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def preview(parts: list[str]) -> str | None:
    text = "".join(parts)
    return text[:PREVIEW_CHARS] if text else None


def without(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A copy of a call's keyword arguments without the conversation (`names`): kept, it
    would live on until the event is built, and objects kept alive that long make the
    app's garbage collector work harder (see the openai provider's `_read_parsed`)."""
    kept = kwargs.copy()
    for name in names:
        kept.pop(name, None)
    return kept


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))
