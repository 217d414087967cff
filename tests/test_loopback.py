"""The loopback fakes must look real to the real SDKs, or every test built on them lies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
)

import amplitude
from amplitude import BaseEvent, Config

# `tests` is on sys.path via `[tool.pytest.ini_options] pythonpath` in pyproject.toml.
from loopback import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    EMBEDDING_VECTOR,
    MODEL_SUFFIX,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    STUB_PIECES,
    STUB_TEXT,
    TOTAL_TOKENS,
    AmplitudeCapture,
    OpenAIStub,
    Reply,
)

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


# `stub` and `capture` come from conftest.py; these clients are closed deterministically.


@pytest.fixture
def client(stub: OpenAIStub) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def eager_amp(capture: AmplitudeCapture) -> Iterator[amplitude.Amplitude]:
    """An Amplitude client that sends every event on its own, right away."""
    sdk = amplitude.Amplitude(
        "key", Config(server_url=capture.url, flush_queue_size=1, flush_interval_millis=50)
    )
    yield sdk
    sdk.shutdown()


# -- OpenAI ------------------------------------------------------------------------------


def test_chat_create_parses_and_is_recorded(stub: OpenAIStub, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.choices[0].message.content == STUB_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o" + MODEL_SUFFIX
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        TOTAL_TOKENS,
    )
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert usage.completion_tokens_details
    assert usage.completion_tokens_details.reasoning_tokens == REASONING_TOKENS
    assert completion._request_id and completion._request_id.startswith("req_")

    [request] = stub.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "gpt-4o"


def test_chat_n_choices_and_tool_calls(client: openai.OpenAI) -> None:
    two = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, n=2)
    assert [choice.index for choice in two.choices] == [0, 1]

    tooled = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
    )
    choice = tooled.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"


def test_chat_create_and_stream_async(stub: OpenAIStub) -> None:
    async def scenario() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0) as sdk:
            completion = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
            return completion.choices[0].message.content, text

    assert asyncio.run(scenario()) == (STUB_TEXT, STUB_TEXT)


def test_chat_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)

    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == STUB_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert all("usage" not in chunk.model_fields_set for chunk in chunks)


def test_chat_stream_include_usage_ends_with_usage_chunk(client: openai.OpenAI) -> None:
    with client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)

    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens == TOTAL_TOKENS
    assert (
        last.usage.prompt_tokens_details and last.usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    )
    assert all(chunk.usage is None and "usage" in chunk.model_fields_set for chunk in body)
    assert body[-1].choices[0].finish_reason == "stop"


def test_responses_create(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="Hi")

    assert response.output_text == STUB_TEXT
    assert response.status == "completed"
    assert response.model == "gpt-4o" + MODEL_SUFFIX
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == CACHED_TOKENS
    assert response.usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS


def test_responses_stream_events_and_helper(client: openai.OpenAI) -> None:
    with client.responses.create(model="gpt-4o", input="Hi", stream=True) as stream:
        events = list(stream)

    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(STUB_PIECES),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None
    assert completed.response.usage.total_tokens == TOTAL_TOKENS
    assert completed.response.usage.input_tokens_details.cached_tokens == CACHED_TOKENS

    # The SDK's stream helper accumulates and cross-checks events: a stricter consumer.
    with client.responses.stream(model="gpt-4o", input="Hi") as helper:
        deltas = [event.delta for event in helper if event.type == "response.output_text.delta"]
        final = helper.get_final_response()
    assert "".join(deltas) == final.output_text == STUB_TEXT


def test_embeddings_base64_default_and_float(client: openai.OpenAI) -> None:
    # Without encoding_format the SDK requests base64 and decodes it itself.
    default = client.embeddings.create(model="text-embedding-3-small", input="Hi")
    assert default.data[0].embedding == list(EMBEDDING_VECTOR)

    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert [item.index for item in floats.data] == [0, 1]
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0


def test_legacy_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert completion.choices[0].text == STUB_TEXT
    assert completion.usage is not None and completion.usage.total_tokens == TOTAL_TOKENS

    with client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hi",
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        *body, last = list(stream)
    assert "".join(chunk.choices[0].text for chunk in body) == STUB_TEXT
    assert last.choices == [] and last.usage is not None


def test_enqueued_error_then_defaults_resume(stub: OpenAIStub, client: openai.OpenAI) -> None:
    stub.enqueue(Reply.error(500, "The server had an error", type_="server_error"))

    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 500
    assert "The server had an error" in info.value.message
    assert info.value.request_id and info.value.request_id.startswith("req_")

    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == STUB_TEXT


def test_unknown_path_is_openai_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.list()


def test_truncated_stream_raises(stub: OpenAIStub, client: openai.OpenAI) -> None:
    stub.enqueue(Reply(truncate_after=3))
    received: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with stream, pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    assert len(received) == 3


def test_hang_times_out_and_replay_is_verbatim(stub: OpenAIStub, client: openai.OpenAI) -> None:
    stub.enqueue(Reply(hang=True))
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="gpt-4o", messages=MESSAGES)

    recorded = {
        "id": "chatcmpl-recorded",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "cassette"}, "finish_reason": "stop"}
        ],
    }
    stub.replay(200, json.dumps(recorded), headers={"x-request-id": "req_cassette"})
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "cassette"
    assert completion._request_id == "req_cassette"


# -- Amplitude ---------------------------------------------------------------------------


def test_amplitude_event_arrives(capture: AmplitudeCapture, eager_amp: amplitude.Amplitude) -> None:
    eager_amp.track(BaseEvent(event_type="x", device_id="device-12345"))

    [event] = capture.wait_for(1)
    assert (event["event_type"], event["device_id"]) == ("x", "device-12345")
    assert capture.payloads[0]["api_key"] == "key"
    assert json.loads(capture.raw_bodies[0]) == capture.payloads[0]
    assert capture.rejected == []


def test_amplitude_rejects_short_ids(capture: AmplitudeCapture, eager_amp: amplitude.Amplitude) -> None:
    eager_amp.track(BaseEvent(event_type="bad", user_id="abc"))
    eager_amp.track(BaseEvent(event_type="good", user_id="user-12345"))

    assert [event["event_type"] for event in capture.wait_for(1)] == ["good"]
    # The two events travel in separate uploads, in no guaranteed order.
    deadline = time.monotonic() + 5
    while not capture.rejected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [payload["events"][0]["user_id"] for payload in capture.rejected] == ["abc"]


def test_amplitude_retries_after_enqueued_500(
    capture: AmplitudeCapture, eager_amp: amplitude.Amplitude
) -> None:
    capture.enqueue(500)
    eager_amp.track(BaseEvent(event_type="retried", device_id="device-12345"))

    assert [event["event_type"] for event in capture.wait_for(1)] == ["retried"]
    assert len(capture.failed) == 1


def test_amplitude_wait_for_timeout_message(capture: AmplitudeCapture) -> None:
    with pytest.raises(AssertionError, match="expected at least 1 Amplitude event"):
        capture.wait_for(1, timeout=0.05)
