"""Loopback fake of the Gemini API (REST, ``v1`` / ``v1beta``), for the real google-genai SDK (stdlib only).

Speaks the wire format the SDK parses: a `GenerateContentResponse` JSON body, a stream of
them as SSE ``data:`` blocks (``?alt=sse``, each chunk with the usage so far), embeddings,
and ``{"error": {"code", "message", "status"}}`` bodies, also as an SSE block mid-stream::

    with GeminiStub() as stub:
        client = genai.Client(api_key="k", http_options={"base_url": stub.base_url})
        client.models.generate_content(model="gemini-2.5-flash", contents="Hi")

Routes (POST, any ``/<version>/...models/<model>:<action>`` path, so Vertex-style resource
names work too): ``generateContent``, ``streamGenerateContent``, ``embedContent``,
``batchEmbedContents``. The answer depends on the request as the real API's does: a
function declaration in ``tools`` gets a `functionCall` part, a ``thinkingConfig`` with
``includeThoughts`` a thought part first (thinking tokens are reported either way).
Overrides queue with `enqueue` (``loopback.Reply``; build bodies with `error_reply`,
`stream_chunks` and `error_chunk`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from loopback import STUB_PIECES, STUB_TEXT, ProviderStub, Recorded, Reply, format_sse

__all__ = [
    "CACHED_TOKENS",
    "EMBEDDING_TOKENS",
    "EMBEDDING_VECTOR",
    "MODEL_SUFFIX",
    "OUTPUT_TOKENS",
    "PROMPT_TOKENS",
    "THOUGHT_TEXT",
    "THOUGHTS_TOKENS",
    "TOTAL_TOKENS",
    "GeminiStub",
    "error_chunk",
    "error_reply",
    "stream_chunks",
]

# The API answers with the model version that served the call.
MODEL_SUFFIX = "-001"
PROMPT_TOKENS = 12  # cached tokens included, as the API counts them
CACHED_TOKENS = 4
OUTPUT_TOKENS = 5
THOUGHTS_TOKENS = 2  # reported only when the request set a thinking config
TOTAL_TOKENS = PROMPT_TOKENS + OUTPUT_TOKENS
THOUGHT_TEXT = "Let me think."
EMBEDDING_VECTOR = (0.0625, -0.125, 0.1875, -0.25)
EMBEDDING_TOKENS = 3  # per input

_ROUTE = re.compile(r"^/[^/]+/(?:.*/)?models/([^/:]+):(\w+)$")
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}


def error_reply(status: int, message: str) -> Reply:
    """A Google API error: ``{"error": {"code", "message", "status"}}``."""
    return Reply(status=status, json=error_body(status, message))


def error_chunk(status: int, message: str) -> str:
    """The SSE block the API sends when a stream fails after its 200 response."""
    return format_sse(error_body(status, message))


def _function_name(request: dict[str, Any]) -> str | None:
    for tool in request.get("tools") or []:
        for declaration in (tool or {}).get("functionDeclarations") or []:
            if declaration.get("name"):
                return str(declaration["name"])
    return None


def _thinking(request: dict[str, Any]) -> dict[str, Any] | None:
    config = (request.get("generationConfig") or {}).get("thinkingConfig")
    return config if isinstance(config, dict) else None


def _usage(request: dict[str, Any], *, final: bool = True) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": PROMPT_TOKENS,
        "cachedContentTokenCount": CACHED_TOKENS,
        "totalTokenCount": PROMPT_TOKENS,
    }
    if final:
        usage["candidatesTokenCount"] = OUTPUT_TOKENS
        usage["totalTokenCount"] = TOTAL_TOKENS
        if _thinking(request) is not None:
            usage["thoughtsTokenCount"] = THOUGHTS_TOKENS
            usage["totalTokenCount"] += THOUGHTS_TOKENS
    return usage


def _parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    thinking = _thinking(request) or {}
    # Protobuf JSON takes either spelling; the SDK sends this one's snake_case.
    if thinking.get("includeThoughts") or thinking.get("include_thoughts"):
        parts.append({"text": THOUGHT_TEXT, "thought": True})
    function = _function_name(request)
    if function:
        parts.append({"functionCall": {"name": function, "args": {"city": "Paris"}}})
    else:
        parts.append({"text": STUB_TEXT})
    return parts


def _response(
    model: str, parts: list[dict[str, Any]], usage: dict[str, Any], finish: str | None, response_id: str
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": response_id,
    }


def _dated(model: str) -> str:
    return model if model.endswith(MODEL_SUFFIX) else model + MODEL_SUFFIX


def stream_chunks(request: dict[str, Any], model: str = "gemini-2.5-flash" + MODEL_SUFFIX) -> list[str]:
    """The SSE blocks of a streamed answer to `request`, each already formatted: thoughts
    and function calls whole, text piece by piece, the finish reason and final counts last."""
    response_id = uuid.uuid4().hex[:22]
    parts = _parts(request)
    text_pieces = [{"text": piece} for piece in STUB_PIECES] if parts[-1].get("text") == STUB_TEXT else []
    sequence = [*parts[:-1], *(text_pieces or parts[-1:])]
    chunks = []
    for index, part in enumerate(sequence):
        last = index == len(sequence) - 1
        body = _response(model, [part], _usage(request, final=last), "STOP" if last else None, response_id)
        chunks.append(format_sse(body).replace("\n", "\r\n"))  # the API frames SSE with CRLF
    return chunks


def _embeddings(count: int) -> list[dict[str, Any]]:
    return [{"values": list(EMBEDDING_VECTOR)} for _ in range(count)]


class GeminiStub(ProviderStub):
    """Gemini-API-compatible server: realistic default answers plus a FIFO of overrides."""

    @property
    def base_url(self) -> str:
        """Value for ``http_options={"base_url": ...}`` (the SDK adds ``/<api version>/...``)."""
        return self.url

    def _default_reply(self, request: Recorded) -> Reply:
        return _default_reply(request)

    def _error_reply(self, status: int) -> Reply:
        return error_reply(status, f"Stub error {status}")


def _default_reply(request: Recorded) -> Reply:
    route = _ROUTE.match(urlsplit(request.path).path)
    if request.method != "POST" or route is None:
        return error_reply(404, f"Not found: {request.method} {request.path}")
    model, action = unquote(route.group(1)), route.group(2)
    body = request.body if isinstance(request.body, dict) else {}
    if action in ("generateContent", "streamGenerateContent"):
        if not isinstance(body.get("contents"), list):
            return error_reply(400, "* GenerateContentRequest.contents: contents is not specified")
        if action == "streamGenerateContent":
            return Reply(sse=stream_chunks(body, _dated(model)))
        response_id = uuid.uuid4().hex[:22]
        return Reply(json=_response(_dated(model), _parts(body), _usage(body), "STOP", response_id))
    if action == "batchEmbedContents":
        requests = body.get("requests") or []
        return Reply(json={"embeddings": _embeddings(len(requests))})
    if action == "embedContent":
        return Reply(json={"embedding": _embeddings(1)[0]})
    return error_reply(404, f"Unknown action {action}")
