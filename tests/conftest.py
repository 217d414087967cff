"""Fixtures: the real openai SDK against a loopback stub, the real Amplitude client
against a loopback capture server, and a privacy scan of everything captured."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

import amplitude
import amplitude.ai
from amplitude.ai import _dispatch
from loopback import AmplitudeCapture, OpenAIStub

# Credentials used in tests; none of them may ever appear in a captured event.
OPENAI_KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"
OPENAI_ORG = "org-test-DO-NOT-LEAK-42"
OPENAI_PROJECT = "proj_test-DO-NOT-LEAK-77"
AMPLITUDE_KEY = "amplitude-test-key-0000"
SECRETS = (OPENAI_KEY, OPENAI_ORG, OPENAI_PROJECT, "DO-NOT-LEAK")

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


def openai_options(stub: OpenAIStub) -> dict[str, Any]:
    return {
        "api_key": OPENAI_KEY,
        "organization": OPENAI_ORG,
        "project": OPENAI_PROJECT,
        "base_url": stub.base_url,
        "max_retries": 0,
    }


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
