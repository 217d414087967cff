"""Loopback fake of Mistral's HTTP API, for the real mistralai SDK (stdlib only).

Speaks the wire format the SDK parses: a chat completion or embedding JSON body, or a
stream of data-only SSE chunks ended by ``data: [DONE]`` (the last chunk carries the
usage), with Mistral's ``mistral-correlation-id`` header::

    with MistralStub() as stub:
        client = Mistral(api_key="k", server_url=stub.url)
        client.chat.complete(model="mistral-small-latest", messages=[...])

Routes: POST ``/v1/chat/completions``, ``/v1/embeddings`` and Azure AI's
``/models/chat/completions``; anything else is a 404 with
Mistral's error body. The answer depends on the request as the real API's does: a
function in ``tools`` gets a tool call, a ``magistral-*`` model a thinking chunk before its
text. Overrides queue with `enqueue` (``loopback.Reply``; build bodies with
`error_reply`, `chat_events`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from loopback import SSE_DONE, STUB_PIECES, STUB_TEXT, OpenAIStub, Recorded, Reply, format_sse

__all__ = [
    "CACHED_TOKENS",
    "COMPLETION_TOKENS",
    "EMBEDDING_TOKENS_PER_INPUT",
    "MODEL_SUFFIX",
    "PROMPT_TOKENS",
    "REQUEST_ID_HEADER",
    "THINKING_TEXT",
    "TOOL_ARGUMENTS",
    "TOTAL_TOKENS",
    "MistralStub",
    "chat_events",
    "error_reply",
]

# The real API answers an alias ("mistral-small-latest") with the version it served.
MODEL_SUFFIX = "-2506"
PROMPT_TOKENS = 12  # cached ones included, as Mistral (and OpenAI) count them
CACHED_TOKENS = 4
COMPLETION_TOKENS = 5
TOTAL_TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS
EMBEDDING_TOKENS_PER_INPUT = 3
THINKING_TEXT = "Let me think."
TOOL_ARGUMENTS = '{"city": "Paris"}'
REQUEST_ID_HEADER = "mistral-correlation-id"


def error_reply(status: int, message: str, type_: str = "invalid_request_error") -> Reply:
    """Mistral's error body (the SDK raises `SDKError` with it for any 4xx/5xx but 422)."""
    body = {"object": "error", "message": message, "type": type_, "param": None, "code": None}
    return Reply(status=status, json=body)


def _served(model: Any) -> str:
    return str(model or "mistral-small").replace("-latest", "") + MODEL_SUFFIX


def _usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": TOTAL_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
    }


def _function(request: dict[str, Any]) -> str | None:
    if request.get("tool_choice") == "none":
        return None
    for tool in request.get("tools") or []:
        name = (tool.get("function") or {}).get("name") if isinstance(tool, dict) else None
        if name:
            return str(name)
    return None


def _thinks(request: dict[str, Any]) -> bool:
    return str(request.get("model") or "").startswith("magistral")


def _tool_call(name: str) -> dict[str, Any]:
    call_id = uuid.uuid4().hex[:9]
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": TOOL_ARGUMENTS},
        "index": 0,
    }


def _thinking_chunk() -> dict[str, Any]:
    return {"type": "thinking", "thinking": [{"type": "text", "text": THINKING_TEXT}]}


def _base(request: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "object": kind,
        "created": int(time.time()),
        "model": _served(request.get("model")),
    }


def _chat(request: dict[str, Any]) -> Reply:
    if request.get("stream"):
        return Reply(sse=chat_events(request))
    tool = _function(request)
    content: Any = [_thinking_chunk(), {"type": "text", "text": STUB_TEXT}] if _thinks(request) else STUB_TEXT
    message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": None, "prefix": False}
    if tool:
        message.update(content="", tool_calls=[_tool_call(tool)])
    choices = [
        {"index": i, "message": message, "finish_reason": "tool_calls" if tool else "stop"}
        for i in range(int(request.get("n") or 1))
    ]
    return Reply(json={**_base(request, "chat.completion"), "choices": choices, "usage": _usage()})


def chat_events(request: dict[str, Any]) -> list[str]:
    """The SSE blocks of a streamed answer to `request`, each already formatted."""
    base = _base(request, "chat.completion.chunk")
    tool = _function(request)
    deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
    if _thinks(request):
        deltas.append(({"content": [_thinking_chunk()]}, None))
    if tool:
        deltas.append(({"tool_calls": [_tool_call(tool)]}, None))
    else:
        deltas += [({"content": piece}, None) for piece in STUB_PIECES]
    deltas.append(({"content": ""}, "tool_calls" if tool else "stop"))
    blocks = []
    for number, (delta, finish) in enumerate(deltas, 1):
        chunk: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if number == len(deltas):
            chunk["usage"] = _usage()  # Mistral reports usage with the final chunk
        blocks.append(format_sse(chunk))
    return [*blocks, SSE_DONE]


def _embeddings(request: dict[str, Any]) -> Reply:
    inputs = request.get("input")  # the SDK's `inputs` argument, as sent
    count = len(inputs) if isinstance(inputs, list) else 1
    tokens = count * EMBEDDING_TOKENS_PER_INPUT
    data = [{"object": "embedding", "embedding": [0.0625, -0.125, 0.25], "index": i} for i in range(count)]
    usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
    return Reply(json={**_base(request, "list"), "data": data, "usage": usage})


# Azure AI serves Mistral's chat at `/models/chat/completions` (`MistralAzure`).
_ROUTES = {"/v1/chat/completions": _chat, "/v1/embeddings": _embeddings, "/models/chat/completions": _chat}


class MistralStub(OpenAIStub):
    """Mistral-compatible server: realistic default answers plus a FIFO of overrides
    (`enqueue`; a reply without a body alters the default answer, e.g.
    ``Reply(truncate_after=3)``), every request recorded in `requests`."""

    @property
    def base_url(self) -> str:
        """Value for ``Mistral(server_url=...)`` (the SDK adds ``/v1/...``)."""
        return self.url

    def _default_reply(self, request: Recorded) -> Reply:
        return _default_reply(request)

    def _error_reply(self, status: int) -> Reply:
        return error_reply(status, f"Stub error {status}")

    def _response_headers(self) -> dict[str, str]:
        return {REQUEST_ID_HEADER: uuid.uuid4().hex, "x-kong-request-id": uuid.uuid4().hex}


def _default_reply(request: Recorded) -> Reply:
    route = _ROUTES.get(urlsplit(request.path).path) if request.method == "POST" else None
    if route is None:
        return error_reply(404, f"Not found: {request.method} {request.path}", "not_found")
    if not isinstance(request.body, dict):
        return error_reply(400, "Invalid JSON body")
    return route(request.body)
