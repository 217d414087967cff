"""OpenAI-compatible servers (vLLM, Ollama, LiteLLM, OpenRouter...) behind the openai SDK.

They stay `provider` `openai` (the SDK in use) and are told apart by `server_host`; their
requests are sent exactly as the caller wrote them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import OPENAI_KEY, openai_v1, props, proxy_http_client
from loopback import STUB_TEXT, OpenAIStub

openai = openai_v1()

MESSAGES = [{"role": "user", "content": "Say hello."}]


def chat_then_stream(client: Any) -> None:
    completion = client.chat.completions.create(model="llama3.1:8b", messages=MESSAGES)
    assert completion.choices[0].message.content == STUB_TEXT
    stream = client.chat.completions.create(model="llama3.1:8b", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == STUB_TEXT


def assert_compatible_server(capture: Any, stub: OpenAIStub, host: str) -> None:
    assert "stream_options" not in stub.requests[-1].body, "never inject options for other hosts"
    plain, streamed = props(capture, 2)
    for p in (plain, streamed):
        assert p["provider"] == "openai"
        assert p["server_host"] == host
        assert "deployment" not in p
    assert plain["input_tokens"] > 0
    assert "input_tokens" not in streamed, "the server reported no usage and none was asked for"
    assert streamed["response_preview"] == STUB_TEXT


@pytest.mark.parametrize(
    "base_url",
    [
        "http://vllm.internal:8000/v1",
        "http://ollama.lan:11434/v1",
        "http://litellm-proxy.internal:4000/v1",
        "http://openrouter.ai/v1",
    ],
)
def test_named_hosts(tracked: Any, stub: OpenAIStub, capture: Any, base_url: str) -> None:
    with openai.OpenAI(
        api_key=OPENAI_KEY, base_url=base_url, http_client=proxy_http_client(stub), max_retries=0
    ) as client:
        chat_then_stream(client)
    assert_compatible_server(capture, stub, str(urlsplit(base_url).hostname))


def test_local_server(tracked: Any, stub: OpenAIStub, capture: Any) -> None:
    """`http://localhost:8000/v1`, the usual vLLM / Ollama setup (no proxy: every 1.x SDK)."""
    with openai.OpenAI(api_key="EMPTY", base_url=f"http://localhost:{stub.port}/v1", max_retries=0) as client:
        chat_then_stream(client)
    assert_compatible_server(capture, stub, "localhost")
