"""Loopback fake of Cohere's HTTP API, for the real cohere SDK (stdlib only).

Speaks the wire format the SDK parses: JSON bodies for ``/v2/chat``, ``/v2/embed``,
``/v1/chat`` and ``/v1/embed``; chat streams (``"stream": true`` in the body) as SSE
events for v2 (message-start, content-start / -delta / -end, tool-call-*, message-end
with the usage) and as newline-delimited JSON for v1 (stream-start, text-generation,
tool-calls-generation, stream-end with the whole response)::

    with CohereStub() as stub:
        client = cohere.ClientV2(api_key="k", base_url=stub.base_url)
        client.chat(model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}])

The answer depends on the request as the real API's does: ``tools`` get a tool call,
``thinking`` a thinking block first. Overrides queue with `enqueue` (``loopback.Reply``;
build bodies with `error_reply`, `v2_events` and `v1_lines`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from loopback import (
    STUB_PIECES,
    STUB_TEXT,
    ProviderStub,
    Recorded,
    Reply,
    _function_tool,
    format_sse,
)

__all__ = [
    "BILLED_INPUT_TOKENS",
    "CACHED_TOKENS",
    "EMBED_TOKENS_PER_TEXT",
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "CohereStub",
    "error_reply",
    "v1_lines",
    "v2_events",
]

INPUT_TOKENS = 12  # `tokens`: what the model processed, the preamble included
BILLED_INPUT_TOKENS = 9  # `billed_units`: what is charged
CACHED_TOKENS = 4
OUTPUT_TOKENS = 5
EMBED_TOKENS_PER_TEXT = 3
THINKING_TEXT = "Let me think."
EMBEDDING = [0.0625, -0.125, 0.1875, -0.25]


def error_reply(status: int, message: str, *, headers: dict[str, str] | None = None) -> Reply:
    """A Cohere error body: ``{"id", "message"}``."""
    return Reply(status=status, json={"id": _new_id(), "message": message}, headers=dict(headers or {}))


def _new_id() -> str:
    return str(uuid.uuid4())


def _tool(request: dict[str, Any]) -> str | None:
    """Name of the first tool the model may call: v2 declares tools as OpenAI does, v1
    names them directly."""
    if request.get("tool_choice") == "NONE":
        return None
    named = [tool["name"] for tool in request.get("tools") or [] if isinstance(tool, dict) and "name" in tool]
    return _function_tool(request) or (str(named[0]) if named else None)


def _thinks(request: dict[str, Any]) -> bool:
    thinking = request.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def _usage(billed_output: int = OUTPUT_TOKENS) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": BILLED_INPUT_TOKENS, "output_tokens": billed_output},
        "tokens": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS},
        "cached_tokens": CACHED_TOKENS,
    }


# -- v2 ----------------------------------------------------------------------------


def _v2_message(request: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if _thinks(request):
        content.append({"type": "thinking", "thinking": THINKING_TEXT})
    message: dict[str, Any] = {"role": "assistant", "content": content}
    tool = _tool(request)
    if tool:
        message["tool_plan"] = "I will call the tool."
        message["tool_calls"] = [
            {
                "id": "call_" + uuid.uuid4().hex[:8],
                "type": "function",
                "function": {"name": tool, "arguments": "{}"},
            }
        ]
    else:
        content.append({"type": "text", "text": STUB_TEXT})
    return message


def _v2_chat(request: dict[str, Any]) -> dict[str, Any]:
    message = _v2_message(request)
    return {
        "id": _new_id(),
        "finish_reason": "TOOL_CALL" if "tool_calls" in message else "COMPLETE",
        "message": message,
        "usage": _usage(),
    }


def v2_events(request: dict[str, Any]) -> list[str]:
    """The SSE blocks of a streamed v2 answer to `request`, each already formatted."""
    final = _v2_chat(request)
    message = final["message"]
    events: list[dict[str, Any]] = [
        {"type": "message-start", "id": final["id"], "delta": {"message": {"role": "assistant"}}}
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        pieces = STUB_PIECES if kind == "text" else (block[kind],)
        events.append(
            {
                "type": "content-start",
                "index": index,
                "delta": {"message": {"content": {"type": kind, kind: ""}}},
            }
        )
        events += [
            {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: piece}}}}
            for piece in pieces
        ]
        events.append({"type": "content-end", "index": index})
    for index, call in enumerate(message.get("tool_calls") or []):
        events += [
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": message["tool_plan"]}}},
            {"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": call}}},
            {"type": "tool-call-end", "index": index},
        ]
    events.append(
        {"type": "message-end", "delta": {"finish_reason": final["finish_reason"], "usage": final["usage"]}}
    )
    return [format_sse(event, event=event["type"]) for event in events]


def _v2_embed(request: dict[str, Any]) -> dict[str, Any]:
    texts = [str(text) for text in request.get("texts") or []]
    types = request.get("embedding_types") or ["float"]
    return {
        "id": _new_id(),
        "response_type": "embeddings_by_type",
        "embeddings": {str(kind): [EMBEDDING for _ in texts] for kind in types},
        "texts": texts,
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"input_tokens": EMBED_TOKENS_PER_TEXT * len(texts)},
        },
    }


# -- v1 ----------------------------------------------------------------------------


def _v1_chat(request: dict[str, Any]) -> dict[str, Any]:
    tool = _tool(request)
    response: dict[str, Any] = {
        "response_id": _new_id(),
        "generation_id": _new_id(),
        "text": "" if tool else STUB_TEXT,
        "finish_reason": "COMPLETE",
        "meta": {"api_version": {"version": "1"}, **_usage()},
    }
    if tool:
        response["tool_calls"] = [{"name": tool, "parameters": {}}]
    return response


def v1_lines(request: dict[str, Any]) -> list[str]:
    """The newline-delimited JSON events of a streamed v1 answer to `request`."""
    final = _v1_chat(request)
    events: list[dict[str, Any]] = [{"event_type": "stream-start", "generation_id": final["generation_id"]}]
    events += [{"event_type": "text-generation", "text": piece} for piece in STUB_PIECES if final["text"]]
    if final.get("tool_calls"):
        events.append({"event_type": "tool-calls-generation", "tool_calls": final["tool_calls"]})
    events.append({"event_type": "stream-end", "finish_reason": final["finish_reason"], "response": final})
    return [json.dumps({"is_finished": e["event_type"] == "stream-end", **e}) + "\n" for e in events]


def _v1_embed(request: dict[str, Any]) -> dict[str, Any]:
    body = _v2_embed(request)
    if "embedding_types" not in request:
        body["response_type"] = "embeddings_floats"
        body["embeddings"] = body["embeddings"]["float"]
    body["meta"]["api_version"]["version"] = "1"
    return body


class CohereStub(ProviderStub):
    """Cohere-compatible server: realistic default answers plus a FIFO of overrides."""

    @property
    def base_url(self) -> str:
        """Value for ``cohere.ClientV2(base_url=...)`` (the SDK adds ``v2/chat``...)."""
        return str(self.url)

    def _default_reply(self, request: Recorded) -> Reply:
        return _default_reply(request)

    def _error_reply(self, status: int) -> Reply:
        return error_reply(status, f"Stub error {status}")

    def _response_headers(self) -> dict[str, str]:
        return {"x-request-id": "req-" + uuid.uuid4().hex[:16]}


def _default_reply(request: Recorded) -> Reply:
    route = urlsplit(request.path).path
    body = request.body
    if request.method != "POST" or route not in ("/v2/chat", "/v2/embed", "/v1/chat", "/v1/embed"):
        return error_reply(404, f"Not found: {request.method} {request.path}")
    if not isinstance(body, dict):
        return error_reply(400, "invalid request: body must be a JSON object")
    if route == "/v2/embed":
        return Reply(json=_v2_embed(body))
    if route == "/v1/embed":
        return Reply(json=_v1_embed(body))
    if route == "/v2/chat":
        if not isinstance(body.get("messages"), list):
            return error_reply(400, "invalid request: messages is required")
        return Reply(sse=v2_events(body)) if body.get("stream") else Reply(json=_v2_chat(body))
    if not isinstance(body.get("message"), str):
        return error_reply(400, "invalid request: message is required")
    if body.get("stream"):
        # Written chunk by chunk like SSE, but framed as the v1 API frames it.
        return Reply(sse=v1_lines(body), headers={"content-type": "application/stream+json"})
    return Reply(json=_v1_chat(body))
