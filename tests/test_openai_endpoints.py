"""Responses, embeddings and legacy completions, and usage requested on OpenAI's own API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import OPENAI_KEY, accepts, has_resource, openai_v1, props, proxy_http_client, requires_sdk
from loopback import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    EMBEDDING_TOKENS_PER_INPUT,
    MODEL_SUFFIX,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    STUB_PIECES,
    STUB_TEXT,
    TOTAL_TOKENS,
)

openai = openai_v1()
Chat: Any = openai.resources.chat.Completions
Embeddings: Any = openai.resources.Embeddings

MESSAGES = [{"role": "user", "content": "Say hello."}]

requires_responses = requires_sdk("Responses API", has_resource("responses"), "1.66")
takes_stream_options = accepts(Chat.create, "stream_options")
requires_stream_options = requires_sdk("stream_options", takes_stream_options, "1.26")


@requires_responses
def test_responses_create(tracked: Any, openai_client: Any, capture: Any) -> None:
    response = openai_client.responses.create(
        model="gpt-4o", input="Say hello.", max_output_tokens=64, safety_identifier="safety-user-99"
    )
    assert response.output_text == STUB_TEXT
    (p,) = props(capture)
    assert p["operation"] == "response" and p["api"] == "responses.create"
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX
    assert (p["input_tokens"], p["output_tokens"], p["total_tokens"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        TOTAL_TOKENS,
    )
    assert p["cached_input_tokens"] == CACHED_TOKENS and p["reasoning_tokens"] == REASONING_TOKENS
    assert p["finish_reason"] == "completed"
    assert p["message_count"] == 1 and p["last_message_role"] == "user"
    assert p["max_tokens"] == 64
    assert p["response_preview"] == STUB_TEXT
    assert capture.events[0]["user_id"] == "safety-user-99"


@requires_responses
def test_responses_stream_and_helper(tracked: Any, openai_client: Any, capture: Any) -> None:
    stream = openai_client.responses.create(model="gpt-4o", input="Say hello.", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[-1] == "response.completed"
    with openai_client.responses.stream(model="gpt-4o", input="Say hello.") as helper:
        for _event in helper:
            pass
        final = helper.get_final_response()
    assert final.output_text == STUB_TEXT
    for p in props(capture, 2):
        assert p["stream"] is True and p["stream_completed"] is True
        assert p["api"] == "responses.create"
        assert p["input_tokens"] == PROMPT_TOKENS and p["total_tokens"] == TOTAL_TOKENS
        assert p["response_preview"] == STUB_TEXT
        assert p["time_to_first_token_ms"] > 0


@requires_responses
def test_responses_stream_abandoned_keeps_partial_text(
    tracked: Any, openai_client: Any, capture: Any
) -> None:
    stream = openai_client.responses.create(model="gpt-4o", input="Say hello.", stream=True)
    seen = []
    for event in stream:
        if event.type == "response.output_text.delta":
            seen.append(event.delta)
            if len(seen) == 2:
                break
    stream.close()
    (p,) = props(capture)
    assert p["stream_completed"] is False
    assert p["response_preview"] == "".join(seen)
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX


@requires_responses
async def test_responses_async(tracked: Any, async_openai_client: Any, capture: Any) -> None:
    response = await async_openai_client.responses.create(model="gpt-4o", input="Say hello.")
    assert response.output_text == STUB_TEXT
    stream = await async_openai_client.responses.create(model="gpt-4o", input="Say hello.", stream=True)
    async for _event in stream:
        pass
    first, second = props(capture, 2)
    assert first["stream"] is False and second["stream"] is True
    assert first["input_tokens"] == second["input_tokens"] == PROMPT_TOKENS


def test_embeddings(tracked: Any, openai_client: Any, capture: Any) -> None:
    options = {"dimensions": 8} if accepts(Embeddings.create, "dimensions") else {}  # 1.10+
    result = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"], **options)
    assert len(result.data) == 3
    (p,) = props(capture)
    assert p["operation"] == "embedding" and p["api"] == "embeddings.create"
    assert p["input_count"] == 3 and p.get("dimensions") == options.get("dimensions")
    assert p["input_tokens"] == 3 * EMBEDDING_TOKENS_PER_INPUT
    assert "response_preview" not in p and "message_count" not in p


async def test_embeddings_async(tracked: Any, async_openai_client: Any, capture: Any) -> None:
    await async_openai_client.embeddings.create(model="text-embedding-3-small", input="one")
    (p,) = props(capture)
    assert p["input_count"] == 1 and p["input_tokens"] == EMBEDDING_TOKENS_PER_INPUT


def test_legacy_completions(tracked: Any, openai_client: Any, capture: Any) -> None:
    completion = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello.")
    assert completion.choices[0].text == STUB_TEXT
    text = "".join(
        c.choices[0].text
        for c in openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True)
        if c.choices
    )
    assert text == STUB_TEXT
    first, second = props(capture, 2)
    assert first["operation"] == second["operation"] == "completion"
    assert first["response_preview"] == second["response_preview"] == STUB_TEXT
    assert first["finish_reason"] == second["finish_reason"] == "stop"


# -- usage on OpenAI's own API ------------------------------------------------


@pytest.fixture
def api_openai_com(stub: Any) -> Iterator[Any]:
    """A client whose base URL is OpenAI's own host, reaching the stub through an HTTP proxy."""
    client = openai.OpenAI(
        api_key=OPENAI_KEY,
        base_url="http://api.openai.com/v1",
        http_client=proxy_http_client(stub),
        max_retries=0,
    )
    yield client
    client.close()


@requires_stream_options
def test_usage_is_requested_and_hidden_on_openai(
    tracked: Any, api_openai_com: Any, capture: Any, stub: Any
) -> None:
    chunks = list(api_openai_com.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert stub.requests[-1].body["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks), "the usage-only chunk is not shown to the caller"
    assert [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content] == list(STUB_PIECES)
    (p,) = props(capture)
    assert (p["input_tokens"], p["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert p["server_host"] == "api.openai.com"


@requires_stream_options
def test_caller_stream_options_are_kept(tracked: Any, api_openai_com: Any, capture: Any, stub: Any) -> None:
    options = {"include_usage": False}
    list(
        api_openai_com.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options=options
        )
    )
    assert stub.requests[-1].body["stream_options"] == {"include_usage": False}
    assert options == {"include_usage": False}
    (p,) = props(capture)
    assert "input_tokens" not in p


def test_untracked_request_is_unchanged(api_openai_com: Any, stub: Any) -> None:
    list(api_openai_com.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "stream_options" not in stub.requests[-1].body


@pytest.mark.skipif(takes_stream_options, reason="this openai takes stream_options (1.26+)")
def test_sdk_without_stream_options_is_left_alone(
    tracked: Any, api_openai_com: Any, capture: Any, stub: Any
) -> None:
    """Regression: tracking added `stream_options` on OpenAI's host, which this SDK rejects."""
    chunks = list(api_openai_com.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "stream_options" not in stub.requests[-1].body
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STUB_TEXT
    (p,) = props(capture)
    assert p["response_preview"] == STUB_TEXT and "input_tokens" not in p
