"""One `openai` distribution, two provider modules, many SDK shapes: which module loads for
which version, and what the v1 provider must not assume about an older 1.x SDK.

Runs in every environment: nothing here needs a particular SDK version installed.
"""

from __future__ import annotations

import logging
import types
from typing import Any

import pytest

from amplitude.ai import _instrument, _patching
from amplitude.ai._call import Call
from amplitude.ai._providers import BUILTIN
from amplitude.ai._providers.openai import PROVIDER, _fold_choices, _stream_body, _StreamState
from amplitude.ai._state import Binding
from conftest import props

V1 = next(entry for entry in BUILTIN if entry.module.endswith("_providers.openai"))
LEGACY = next(entry for entry in BUILTIN if entry.module.endswith("_providers.openai_legacy"))
CHAT = next(m for m in PROVIDER.methods if m.api == "chat.completions.create" and not m.is_async)


@pytest.mark.parametrize(
    ("version", "module", "warns"),
    [
        ("0.26.5", LEGACY, True),
        ("0.27.0", LEGACY, False),
        ("0.28.1", LEGACY, False),
        ("1.0.0", V1, False),
        ("3.57.0", V1, False),
        ("4.0.0", V1, True),
    ],
)
def test_each_version_loads_one_module_and_warns_outside_the_tested_range(
    version: str, module: Any, warns: bool, caplog: pytest.LogCaptureFixture
) -> None:
    sdk = types.SimpleNamespace(__version__=version)
    with caplog.at_level(logging.DEBUG, logger="amplitude.ai"):
        for entry in (V1, LEGACY):
            _instrument._load_provider(entry, sdk)
    messages = [r.getMessage() for r in caplog.records]
    other = LEGACY if module is V1 else V1
    assert f"openai {version}: not for {other.module}" in messages
    assert f"openai {version}: not for {module.module}" not in messages
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    outside = f"amplitude.ai: openai {version} is outside the supported range {module.supported}"
    assert warnings == ([f"{outside}; tracking what is still found."] if warns else [])


def test_missing_methods_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """An SDK without some of the declared classes or methods: the rest is patched, no error."""

    class Completions:
        def create(self, **kwargs: Any) -> Any:
            return kwargs

    module = types.ModuleType("openai.resources.chat.completions")
    module.Completions = Completions  # type: ignore[attr-defined]
    methods = tuple(m for m in PROVIDER.methods if m.module == "openai.resources.chat.completions")
    assert {m.name for m in methods} == {"create"} and {m.cls for m in methods} == {
        "Completions",
        "AsyncCompletions",
    }
    with caplog.at_level(logging.INFO, logger="amplitude.ai"):
        _instrument._patch_module(PROVIDER, "1.0.0", methods, module)
    assert _patching.tracking_switch(Completions.__dict__["create"]) is not None
    assert Completions().create(model="m") == {"model": "m"}
    assert "patched openai 1.0.0: chat.completions.create" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class _OpenAIHost:
    base_url = types.SimpleNamespace(host="api.openai.com")


class _Completions126:
    _client = _OpenAIHost()

    def create(self, *, model: str, messages: Any, stream: bool = False, stream_options: Any = None) -> Any:
        return None


class _Completions125:
    _client = _OpenAIHost()

    def create(self, *, model: str, messages: Any, stream: bool = False) -> Any:
        return None


@pytest.mark.parametrize(("resource", "asks"), [(_Completions126, True), (_Completions125, False)])
def test_usage_is_only_asked_for_where_the_sdk_takes_stream_options(resource: type, asks: bool) -> None:
    """openai < 1.26 has no `stream_options` parameter.

    Regression: on OpenAI's own host every tracked `create(stream=True)` got
    `stream_options` added, which such an SDK rejects with a TypeError in the caller's call.
    """
    instance = resource()
    kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": [], "stream": True}
    call = Call(PROVIDER, CHAT, Binding(None), instance)
    PROVIDER.begin(call, instance, kwargs)
    assert ("stream_options" in kwargs) is asks
    assert call.acc.hide_usage is asks
    instance.create(**kwargs)


def _chunk(content: str | None, finish: str | None = None) -> Any:
    delta = types.SimpleNamespace(role="assistant", content=content, tool_calls=None)
    choice = types.SimpleNamespace(index=0, delta=delta, finish_reason=finish, logprobs=None)
    return types.SimpleNamespace(id="c", model="gpt-4o-2024-08-06", choices=[choice])


def test_chunks_without_a_usage_field_are_folded() -> None:
    """Chunk models before openai 1.26 have no `usage` attribute at all.

    Regression: reading it raised, which stopped folding for the whole stream: events of
    such SDKs had no response preview, finish reason or model.
    """
    acc = _StreamState(chat=True)
    for chunk in (_chunk("Hello"), _chunk(" there"), _chunk(None, "stop")):
        assert _fold_choices(acc, chunk) is False
    body = _stream_body(acc, "chat_completion")
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == "Hello there"


def test_classmethods_are_patched_and_called_once_through_super(tracked: Any, capture: Any) -> None:
    """The pre-1.0 SDK's `create` is a classmethod calling its base class's through `super()`.

    Regression: classmethod objects are not callable, so the patcher skipped them all.
    """
    from amplitude.ai._patching import patch
    from amplitude.ai._providers.openai_legacy import PROVIDER as LEGACY_PROVIDER

    class EngineAPIResource:
        @classmethod
        def create(cls, **params: Any) -> Any:
            return {"object": cls.__name__, "model": params["model"]}

    class ChatCompletion(EngineAPIResource):
        @classmethod
        def create(cls, **params: Any) -> Any:
            return super().create(**params)

    method = next(m for m in LEGACY_PROVIDER.methods if m.api == "ChatCompletion.create")
    assert patch(LEGACY_PROVIDER, method, ChatCompletion)
    assert ChatCompletion.create(model="gpt-4o") == {"object": "ChatCompletion", "model": "gpt-4o"}
    (p,) = props(capture)
    assert (p["api"], p["model"]) == ("ChatCompletion.create", "gpt-4o")
