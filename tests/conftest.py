"""Fixtures: the real openai SDK against a loopback stub, the real Amplitude client
against a loopback capture server, and a privacy scan of everything captured."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import inspect
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import amplitude
import amplitude.ai
from amplitude.ai import _dispatch
from loopback import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    TOTAL_TOKENS,
    AmplitudeCapture,
    OpenAIStub,
    Reply,
)

# Credentials used in tests; none of them may ever appear in a captured event.
OPENAI_KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"
OPENAI_ORG = "org-test-DO-NOT-LEAK-42"
OPENAI_PROJECT = "proj_test-DO-NOT-LEAK-77"
AMPLITUDE_KEY = "amplitude-test-key-0000"
SECRETS = (OPENAI_KEY, OPENAI_ORG, OPENAI_PROJECT, "DO-NOT-LEAK")

# Session-scoped venvs with the package installed (wheel and editable).
pytest_plugins = ("venvs",)

_captures: list[AmplitudeCapture] = []


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture
def capture() -> Iterator[AmplitudeCapture]:
    with AmplitudeCapture() as server:
        _captures.append(server)
        yield server


def make_amplitude(capture: AmplitudeCapture, **config: Any) -> Any:
    settings: dict[str, Any] = {
        "server_url": capture.url,
        "flush_queue_size": 50,
        "flush_interval_millis": 50,
    }
    settings.update(config)
    return amplitude.Amplitude(AMPLITUDE_KEY, amplitude.Config(**settings))


@pytest.fixture
def amp(capture: AmplitudeCapture) -> Iterator[Any]:
    client = make_amplitude(capture)
    yield client
    client.shutdown()


@pytest.fixture
def tracked(amp: Any) -> Iterator[Any]:
    amplitude.ai.track(amp)
    yield amp
    amplitude.ai.untrack()


@pytest.fixture(autouse=True)
def _isolation_and_privacy_scan() -> Iterator[None]:
    """Every test starts untracked, and fails if a secret reached Amplitude."""
    amplitude.ai.untrack()
    _captures.clear()
    yield
    amplitude.ai.untrack()
    gc.collect()
    amplitude.ai.flush(timeout=5)
    for server in _captures:
        for body in [*server.raw_bodies, *(repr(r).encode() for r in server.rejected)]:
            for secret in SECRETS:
                assert secret.encode() not in body, f"secret {secret!r} leaked into an Amplitude payload"
    assert _dispatch.dispatcher.dropped == 0
    # Every call the test left unfinished was ended by the collector: none still held.
    assert not _dispatch.dispatcher.open_streams, [c.method.api for c in _dispatch.dispatcher.open_streams]


def openai_v1() -> Any:
    """The openai module; skips the calling test module under the pre-1.0 SDK."""
    openai = pytest.importorskip("openai")
    if not hasattr(openai, "OpenAI"):
        pytest.skip(
            f"openai {openai.version.VERSION} predates 1.0: see test_openai_legacy.py",
            allow_module_level=True,
        )
    return openai


def requires_sdk(feature: str, present: bool, since: str) -> pytest.MarkDecorator:
    """Skip a test of `feature` where the installed openai SDK predates it (`since` that version)."""
    import openai

    return pytest.mark.skipif(
        not present, reason=f"openai {openai.version.VERSION} has no {feature} ({since}+)"
    )


def has_resource(name: str) -> bool:
    """Whether the installed openai SDK has `client.<name>` (e.g. ``responses``: 1.66+)."""
    return importlib.util.find_spec(f"openai.resources.{name}") is not None


def accepts(func: Any, name: str) -> bool:
    """Whether the installed SDK's `func` takes a parameter `name` (older SDKs lack many)."""
    return name in inspect.signature(func).parameters


def openai_options(stub: OpenAIStub) -> dict[str, Any]:
    import openai

    options = {
        "api_key": OPENAI_KEY,
        "organization": OPENAI_ORG,
        "project": OPENAI_PROJECT,
        "base_url": stub.base_url,
        "max_retries": 0,
    }
    if not accepts(openai.OpenAI, "project"):
        del options["project"]  # openai < 1.23
    return options


def proxy_http_client(stub: OpenAIStub, *, is_async: bool = False) -> Any:
    """An SDK HTTP client that sends every request to the stub as its HTTP proxy, so that
    a client's base URL can name any host (api.openai.com, an Azure resource, a vLLM box)."""
    import openai

    http_client_class = getattr(openai, "DefaultAsyncHttpxClient" if is_async else "DefaultHttpxClient", None)
    if http_client_class is None:  # before openai 1.17, a plain httpx client
        import httpx

        http_client_class = httpx.AsyncClient if is_async else httpx.Client
    return http_client_class(proxy=f"http://127.0.0.1:{stub.port}")


@pytest.fixture
def openai_client(stub: OpenAIStub) -> Iterator[Any]:
    import openai

    with openai.OpenAI(**openai_options(stub)) as client:
        yield client


@pytest.fixture
async def async_openai_client(stub: OpenAIStub) -> Any:
    import openai

    async with openai.AsyncOpenAI(**openai_options(stub)) as client:
        yield client


def sent(capture: AmplitudeCapture, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Flush tracking and wait for `count` events at the capture server; exactly `count`."""
    amplitude.ai.flush(timeout=timeout)
    events = capture.wait_for(count, timeout=timeout)
    # Give stray duplicates a chance to show up before asserting exactly-once.
    amplitude.ai.flush(timeout=timeout)
    assert len(capture.events) == count, [e.get("event_properties") for e in capture.events]
    return events


def props(capture: AmplitudeCapture, count: int = 1) -> list[dict[str, Any]]:
    return [e["event_properties"] for e in sent(capture, count)]


STUB_TOKENS = {
    "input_tokens": PROMPT_TOKENS,
    "output_tokens": COMPLETION_TOKENS,
    "total_tokens": TOTAL_TOKENS,
    "cached_input_tokens": CACHED_TOKENS,
    "reasoning_tokens": REASONING_TOKENS,
}
"""The token properties of an event for the stub's chat / completion usage."""


def tokens(p: dict[str, Any]) -> dict[str, Any]:
    """An event's token properties, in the shape of `STUB_TOKENS`."""
    return {name: p.get(name) for name in STUB_TOKENS}


def check_dropped_stream(stub: OpenAIStub, capture: AmplitudeCapture, open_stream: Callable[[], Any]) -> None:
    """The connection drops mid-stream: the caller gets the SDK's error, the event records it."""
    stub.enqueue(Reply(truncate_after=2))
    stream = open_stream()
    with pytest.raises(Exception) as raised:
        for _ in stream:
            pass
    (p,) = props(capture)
    assert p["error_type"] == type(raised.value).__name__
    assert p["stream_completed"] is False


class Conversation(list):  # type: ignore[type-arg]
    """A list of messages that can be weakly referenced: is it still alive?"""


@contextlib.contextmanager
def events_held() -> Iterator[list[Any]]:
    """Inside, finished calls wait in the yielded list instead of becoming events (as they
    would during a batch delay); on leaving, they become events, in order."""
    held: list[Any] = []
    real_handle = _dispatch.dispatcher._handle
    _dispatch.dispatcher._handle = held.append
    try:
        yield held
    finally:
        _dispatch.dispatcher._handle = real_handle
    for call in held:
        real_handle(call)
