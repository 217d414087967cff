"""Declared SDK ranges: which provider module loads for which SDK version, and the warning
for versions outside the tested range."""

from __future__ import annotations

import logging
import types

import pytest

from amplitude.ai import _instrument
from amplitude.ai._providers import BUILTIN
from amplitude.ai._versions import in_range, release


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("3.57.0", ">=1.0,<4", True),
        ("1.0.0", ">=1.0,<4", True),
        ("4.0.0", ">=1.0,<4", False),
        ("0.28.1", ">=1", False),
        ("0.28.1", "<1", True),
        ("1.0.0rc1", ">=1", True),
        ("2", "==2.0.0", True),
        ("1.109.1", ">1.54.3", True),
        ("not-a-version", ">=0", False),
    ],
)
def test_in_range(version: str, spec: str, expected: bool) -> None:
    assert in_range(version, spec) is expected


def test_release_and_bad_spec() -> None:
    assert release("v1.2.3.post4") == (1, 2, 3)
    with pytest.raises(ValueError, match="bad version clause"):
        in_range("1.0", "~=1.0")


OPENAI = next(entry for entry in BUILTIN if entry.module.endswith("_providers.openai"))


def test_outside_the_supported_range_warns_once_and_still_patches(caplog: pytest.LogCaptureFixture) -> None:
    sdk = types.SimpleNamespace(__version__="4.2.0")
    with caplog.at_level(logging.DEBUG, logger="amplitude.ai"):
        _instrument._load_provider(OPENAI, sdk)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "amplitude.ai: openai 4.2.0 is outside the supported range >=1.0,<4; tracking what is still found."
    ]


def test_a_version_another_module_handles_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    sdk = types.SimpleNamespace(__version__="0.28.1")
    with caplog.at_level(logging.DEBUG, logger="amplitude.ai"):
        _instrument._load_provider(OPENAI, sdk)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("not for amplitude.ai._providers.openai" in r.getMessage() for r in caplog.records)
