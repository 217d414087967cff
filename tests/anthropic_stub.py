"""Loopback fake of Anthropic's Messages API, for the real anthropic SDK (stdlib only).

Speaks the wire format the SDK parses: a `Message` JSON body, or a stream of named SSE
events (message_start, content_block_start / _delta / _stop, ping, message_delta,
message_stop, and `error` events mid-stream), with a `request-id` header::

    with AnthropicStub() as stub:
        client = anthropic.Anthropic(base_url=stub.base_url, api_key="k", max_retries=0)
        client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=[...])

Routes: POST ``/v1/messages`` (``?beta=true`` too), Vertex AI's
``/projects/<p>/locations/<r>/publishers/anthropic/models/<model>:rawPredict`` /
``:streamRawPredict`` and Bedrock's ``/model/<model>/invoke`` (its streams are AWS event
streams, not SSE: not served). The answer depends on the request as the real API's does: a
custom tool in ``tools`` gets a `tool_use` block, ``thinking`` a thinking block first.
Overrides queue with `enqueue` (``loopback.Reply``; build bodies with `error_reply`,
`message_events` and `error_event`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from loopback import STUB_PIECES, STUB_TEXT, ProviderStub, Recorded, Reply, format_sse

__all__ = [
    "ALL_INPUT_TOKENS",
    "CACHE_READ_TOKENS",
    "CACHE_WRITE_TOKENS",
    "INPUT_TOKENS",
    "MODEL_SUFFIX",
    "OUTPUT_TOKENS",
    "THINKING_TOKENS",
    "TOOL_INPUT_JSON",
    "AnthropicStub",
    "error_event",
    "error_reply",
    "message_events",
]

# The real API answers an alias ("claude-haiku-4-5") with the dated snapshot.
MODEL_SUFFIX = "-20251001"
INPUT_TOKENS = 12  # Anthropic's `input_tokens`: the uncached part of the prompt only
CACHE_READ_TOKENS = 4
CACHE_WRITE_TOKENS = 3
ALL_INPUT_TOKENS = INPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS
OUTPUT_TOKENS = 5
THINKING_TOKENS = 2  # reported only when the request turned thinking on
TOOL_INPUT_JSON = '{"city": "Paris"}'
THINKING_TEXT = "Let me think."

_DATED_MODEL = re.compile(r"-\d{8}$")
# The platforms name the model in the path, and whether to stream (Vertex) too.
_VERTEX_ROUTE = re.compile(r"^/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/([^/:]+):(\w+)$")
_BEDROCK_ROUTE = re.compile(r"^/model/([^/]+)/(invoke)$")


def error_reply(
    status: int, message: str, type_: str = "invalid_request_error", *, headers: dict[str, str] | None = None
) -> Reply:
    """An Anthropic error body: ``{"type": "error", "error": {"type", "message"}}``."""
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return Reply(status=status, json=body, headers=dict(headers or {}))


def error_event(message: str, type_: str = "overloaded_error") -> str:
    """The `error` SSE event the API sends when a stream fails after its 200 response."""
    return format_sse({"type": "error", "error": {"type": type_, "message": message}}, event="error")


def _dated(model: Any) -> str:
    name = str(model or "claude-haiku-4-5")
    return name if _DATED_MODEL.search(name) else name + MODEL_SUFFIX


def _custom_tool(request: dict[str, Any]) -> str | None:
    """Name of the first client tool the model may call (server tools have a `type`)."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return None
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") in (None, "custom") and tool.get("name"):
            return str(tool["name"])
    return None


def _thinks(request: dict[str, Any]) -> bool:
    thinking = request.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _blocks(request: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if _thinks(request):
        blocks.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": "sig-stub"})
    tool = _custom_tool(request)
    if tool:
        blocks.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": tool, "input": {}})
    else:
        blocks.append({"type": "text", "text": STUB_TEXT, "citations": None})
    return blocks


def _usage(request: dict[str, Any], *, final: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        # message_start reports the first token only; message_delta the cumulative count.
        "output_tokens": OUTPUT_TOKENS if final else 1,
        "service_tier": "standard",
    }
    if final and _thinks(request):
        usage["output_tokens_details"] = {"thinking_tokens": THINKING_TOKENS}
    return usage


def _message(request: dict[str, Any], model: str) -> dict[str, Any]:
    blocks = _blocks(request)
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": _usage(request, final=True),
    }


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One content block as the stream sends it: an empty start, its deltas, a stop."""
    kind = block["type"]
    where = {"index": index}
    if kind == "text":
        start = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in STUB_PIECES]
    elif kind == "thinking":
        start = {**block, "thinking": "", "signature": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block["signature"]},
        ]
    else:
        start = block
        deltas = [{"type": "input_json_delta", "partial_json": TOOL_INPUT_JSON}]
    return [
        ("content_block_start", {**where, "content_block": start}),
        *(("content_block_delta", {**where, "delta": delta}) for delta in deltas),
        ("content_block_stop", where),
    ]


def message_events(request: dict[str, Any], model: str = "claude-haiku-4-5" + MODEL_SUFFIX) -> list[str]:
    """The SSE blocks of a streamed answer to `request`, each already formatted."""
    final = _message(request, model)
    start = {**final, "content": [], "stop_reason": None, "usage": _usage(request, final=False)}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start}), ("ping", {})]
    for index, block in enumerate(final["content"]):
        events += _block_events(index, block)
    events += [
        (
            "message_delta",
            {
                "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
                "usage": {k: v for k, v in final["usage"].items() if k.startswith("output_tokens")},
            },
        ),
        ("message_stop", {}),
    ]
    return [format_sse({"type": kind, **data}, event=kind) for kind, data in events]


class AnthropicStub(ProviderStub):
    """Anthropic-compatible server: realistic default answers plus a FIFO of overrides."""

    @property
    def base_url(self) -> str:
        """Value for ``anthropic.Anthropic(base_url=...)`` (the SDK adds ``/v1/...``)."""
        return self.url

    def _default_reply(self, request: Recorded) -> Reply:
        return _default_reply(request)

    def _error_reply(self, status: int) -> Reply:
        return error_reply(
            status, f"Stub error {status}", "api_error" if status >= 500 else "invalid_request_error"
        )

    def _response_headers(self) -> dict[str, str]:
        return {"request-id": "req_" + uuid.uuid4().hex[:24]}


def _default_reply(request: Recorded) -> Reply:
    path = urlsplit(request.path).path
    platform = _VERTEX_ROUTE.match(path) or _BEDROCK_ROUTE.match(path)
    if request.method != "POST" or not (path == "/v1/messages" or platform):
        return error_reply(404, f"Not found: {request.method} {request.path}", "not_found_error")
    body = request.body
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return error_reply(400, "messages: field required")
    if platform:
        model, stream = unquote(platform.group(1)), platform.group(2) == "streamRawPredict"
    else:
        model, stream = str(body.get("model") or ""), bool(body.get("stream"))
    if stream:
        return Reply(sse=message_events(body, _dated(model)))
    return Reply(json=_message(body, _dated(model)))
