"""The public API: track/untrack, per-thread and per-task scopes, identity, and the
guarantee that tracking never changes what the app sees."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import amplitude.ai
from amplitude.ai._providers.openai import PROVIDER
from conftest import make_amplitude, props, sent
from loopback import STUB_TEXT, AmplitudeCapture

MESSAGES = [{"role": "user", "content": "Say hello."}]


def chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)


def test_inactive_until_tracked(openai_client: Any, amp: Any, capture: Any) -> None:
    assert not amplitude.ai.is_tracking() and amplitude.ai.get_active_client() is None
    chat(openai_client)
    amplitude.ai.track(amp)
    assert amplitude.ai.is_tracking() and amplitude.ai.get_active_client() is amp
    chat(openai_client)
    sent(capture, 1)


def test_untrack_stops_tracking_of_existing_clients(tracked: Any, openai_client: Any, capture: Any) -> None:
    chat(openai_client)
    amplitude.ai.untrack()
    assert not amplitude.ai.is_tracking()
    chat(openai_client)
    chat(openai.OpenAI(api_key="sk-other", base_url=openai_client.base_url, max_retries=0))
    sent(capture, 1)


def test_track_twice_sends_one_event_per_call(amp: Any, openai_client: Any, capture: Any) -> None:
    amplitude.ai.track(amp)
    amplitude.ai.track(amp)
    amplitude.ai.instrument()
    chat(openai_client)
    sent(capture, 1)


def test_identity_options(amp: Any, openai_client: Any, capture: Any) -> None:
    amplitude.ai.track(amp, user_id="user-from-track", device_id="device-from-track", response_preview=False)
    chat(openai_client, user="request-user-ignored")
    (event,) = sent(capture, 1)
    assert event["user_id"] == "user-from-track"
    assert event["device_id"] == "device-from-track"
    assert "response_preview" not in event["event_properties"]


def test_short_request_user_is_not_used(tracked: Any, openai_client: Any, capture: Any) -> None:
    chat(openai_client, user="abc")
    (event,) = sent(capture, 1)
    assert "user_id" not in event and len(event["device_id"]) >= 5
    assert capture.rejected == []


@pytest.mark.parametrize("bad", [{"user_id": "abc"}, {"device_id": ""}])
def test_invalid_ids_are_refused(amp: Any, bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="at least 5"):
        amplitude.ai.track(amp, **bad)
    assert not amplitude.ai.is_tracking()


def test_track_requires_a_client() -> None:
    with pytest.raises(TypeError):
        amplitude.ai.track(None)  # type: ignore[arg-type]


@pytest.fixture
def second() -> Iterator[tuple[Any, AmplitudeCapture]]:
    with AmplitudeCapture() as server:
        client = make_amplitude(server)
        yield client, server
        client.shutdown()


def test_tracking_scope_per_thread(
    tracked: Any, openai_client: Any, capture: Any, second: tuple[Any, AmplitudeCapture]
) -> None:
    scoped_client, scoped_capture = second
    errors: list[BaseException] = []

    def in_scope() -> None:
        try:
            with amplitude.ai.tracking(scoped_client, user_id="thread-user") as active:
                assert active is scoped_client and amplitude.ai.get_active_client() is scoped_client
                chat(openai_client)
                chat(openai_client)
            assert amplitude.ai.get_active_client() is tracked
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_scope)
    thread.start()
    thread.join()
    assert not errors
    # A thread without a scope falls back to the process-wide client.
    fallback = threading.Thread(target=chat, args=(openai_client,))
    fallback.start()
    fallback.join()
    assert [e["user_id"] for e in sent(scoped_capture, 2)] == ["thread-user", "thread-user"]
    sent(capture, 1)


def test_tracking_scope_per_task(
    async_openai_client: Any, capture: Any, amp: Any, second: tuple[Any, AmplitudeCapture]
) -> None:
    other, other_capture = second

    async def task(client: Any, label: str) -> None:
        with amplitude.ai.tracking(client, user_id=label):
            for _ in range(3):
                await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(task(amp, "task-a-user"), task(other, "task-b-user"))
        assert not amplitude.ai.is_tracking()

    asyncio.run(main())
    assert {e["user_id"] for e in sent(capture, 3)} == {"task-a-user"}
    assert {e["user_id"] for e in sent(other_capture, 3)} == {"task-b-user"}


def test_nested_scopes_restore(amp: Any, second: tuple[Any, AmplitudeCapture]) -> None:
    other, _ = second
    with amplitude.ai.tracking(amp):
        with amplitude.ai.tracking(other):
            assert amplitude.ai.get_active_client() is other
        assert amplitude.ai.get_active_client() is amp
    assert amplitude.ai.get_active_client() is None


# -- tracking never changes what the app sees -----------------------------------


@contextlib.contextmanager
def broken(name: str) -> Iterator[None]:
    """Make one of the provider's functions raise, as a bug of ours would."""
    original = getattr(PROVIDER, name)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"injected failure in {name}")

    object.__setattr__(PROVIDER, name, boom)
    try:
        yield
    finally:
        object.__setattr__(PROVIDER, name, original)


def test_broken_extractor_still_sends_what_is_known(tracked: Any, openai_client: Any, capture: Any) -> None:
    with broken("properties"):
        assert chat(openai_client).choices[0].message.content == STUB_TEXT
        (p,) = props(capture)
    assert p["provider"] == "openai" and p["api"] == "chat.completions.create"
    assert p["latency_ms"] > 0


@pytest.mark.parametrize("stage", ["begin", "on_result", "secrets", "user_id"])
def test_internal_failures_never_reach_the_app(
    tracked: Any, openai_client: Any, capture: Any, stage: str, caplog: Any
) -> None:
    with broken(stage):
        completion = chat(openai_client)
        stream = chat(openai_client, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == STUB_TEXT
    assert completion.choices[0].message.content == STUB_TEXT
    expected = 0 if stage == "begin" else 2
    amplitude.ai.flush()
    if expected:
        sent(capture, expected)
    else:
        assert capture.events == []


def test_amplitude_unreachable_does_not_block_calls(openai_client: Any, capture: Any) -> None:
    capture.enqueue(200, hang=True)
    client = make_amplitude(capture, flush_queue_size=1, flush_max_retries=1)
    amplitude.ai.track(client)
    results: list[str] = []

    def calls() -> None:
        results.extend(chat(openai_client).choices[0].message.content for _ in range(20))

    worker = threading.Thread(target=calls, daemon=True)
    worker.start()
    worker.join(timeout=30)
    # The calls returned while Amplitude still has not answered the first upload.
    assert not worker.is_alive(), "LLM calls were blocked by a hanging Amplitude endpoint"
    assert results == [STUB_TEXT] * 20
    amplitude.ai.untrack()
    client.shutdown()


def test_broken_chunk_reader_leaves_the_stream_intact(
    tracked: Any, openai_client: Any, capture: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplitude.ai._providers import openai as provider

    def boom(acc: Any, chunk: Any) -> bool:
        raise RuntimeError("injected failure reading a chunk")

    monkeypatch.setitem(provider._FOLDS, "chat_completion", boom)
    chunks = list(chat(openai_client, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STUB_TEXT
    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is True
    assert p["time_to_first_token_ms"] > 0
    assert "response_preview" not in p
