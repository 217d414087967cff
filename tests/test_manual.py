"""The manual API: `operation()` (context manager and decorator) and `record()`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import amplitude.ai
from conftest import props, sent
from loopback import AmplitudeCapture


class GatewayError(Exception):
    status_code = 503


def test_context_manager_measures_and_reads_what_it_is_told(tracked: Any, capture: AmplitudeCapture) -> None:
    with amplitude.ai.operation(
        provider="vllm", model="llama-3-70b", temperature=0.3, user_id="user-manual-1"
    ) as op:
        op.set_usage(input_tokens=30, output_tokens=12, cached_input_tokens=8)
        op.set_response(text="x" * 600, finish_reason="stop", model="llama-3-70b-instruct")
    (event,) = sent(capture, 1)
    p = event["event_properties"]
    assert event["user_id"] == "user-manual-1"
    assert (p["provider"], p["model"], p["operation"], p["api"]) == (
        "vllm",
        "llama-3-70b-instruct",
        "chat_completion",
        "vllm.chat_completion",
    )
    assert (p["input_tokens"], p["output_tokens"], p["total_tokens"], p["cached_input_tokens"]) == (
        30,
        12,
        42,
        8,
    )
    assert p["response_preview"] == "x" * 500
    assert p["finish_reason"] == "stop" and p["temperature"] == 0.3
    assert p["latency_ms"] >= 0 and p["stream"] is False


def test_errors_are_recorded_and_reraised_unchanged(tracked: Any, capture: AmplitudeCapture) -> None:
    error = GatewayError("upstream unavailable")
    with pytest.raises(GatewayError) as raised, amplitude.ai.operation(provider="my-gateway", model="m-1"):
        raise error
    assert raised.value is error
    (p,) = props(capture)
    assert (p["error_type"], p["error"], p["http_status"]) == ("GatewayError", "upstream unavailable", 503)


def test_decorator_sync_and_async_and_streams(tracked: Any, capture: AmplitudeCapture) -> None:
    @amplitude.ai.operation(provider="local", operation="embedding", api="local.embed")
    def embed(texts: list[str]) -> int:
        return len(texts)

    @amplitude.ai.operation(provider="local", model="tiny")
    async def generate() -> str:
        with amplitude.ai.operation(provider="local", model="tiny-stream") as op:
            op.first_token()
            await asyncio.sleep(0)
        return "done"

    assert embed(["a", "b"]) == 2
    assert embed.__name__ == "embed"
    assert asyncio.run(generate()) == "done"
    events = props(capture, 3)
    by_model = {e.get("model"): e for e in events}
    assert events[0]["api"] == "local.embed" and events[0]["operation"] == "embedding"
    assert by_model["tiny-stream"]["stream"] is True and by_model["tiny-stream"]["stream_completed"] is True
    assert by_model["tiny-stream"]["time_to_first_token_ms"] >= 0
    assert by_model["tiny"]["api"] == "local.chat_completion"


def test_record_a_finished_call(tracked: Any, capture: AmplitudeCapture) -> None:
    amplitude.ai.record(
        provider="batch", model="m-2", latency_ms=1234.5, input_tokens=5, finish_reason="length"
    )
    (p,) = props(capture)
    assert p["latency_ms"] == pytest.approx(1234.5, abs=5)
    assert p["input_tokens"] == 5 and p["finish_reason"] == "length"


def test_nothing_is_recorded_while_untracked(capture: AmplitudeCapture) -> None:
    with amplitude.ai.operation(provider="vllm") as op:
        op.set_usage(input_tokens=1).set_response(text="hi").first_token()
    amplitude.ai.record(provider="vllm")
    amplitude.ai.flush()
    assert capture.events == []
