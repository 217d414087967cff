"""Just enough version comparison for declared SDK ranges (no `packaging` dependency)."""

from __future__ import annotations

import operator
import re
from typing import Callable

_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9.]*)\s*$")


def release(version: str) -> tuple[int, ...] | None:
    """The leading numeric release of `version` ("1.2.3rc1" -> (1, 2, 3)); None if none."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def in_range(version: str, spec: str) -> bool:
    """Whether `version` satisfies every comma-separated clause of `spec` (e.g. ">=1.0,<4").

    Releases compare padded with zeros, so "4" means 4.0.0. An unparsable version is
    outside every range but the empty one, which admits any version.
    """
    if not spec.strip():
        return True
    have = release(version)
    if have is None:
        return False
    for clause in spec.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"bad version clause {clause!r} in {spec!r}")
        want = tuple(int(part) for part in match.group(2).rstrip(".").split("."))
        width = max(len(have), len(want))
        padded_have = have + (0,) * (width - len(have))
        padded_want = want + (0,) * (width - len(want))
        if not _OPS[match.group(1)](padded_have, padded_want):
            return False
    return True
