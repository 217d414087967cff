"""Loopback HTTP fakes for tests: an OpenAI-compatible stub and an Amplitude capture.

Both servers bind 127.0.0.1 on a random free port, answer from daemon threads and
work as context managers (or via ``start()`` / ``stop()``)::

    with OpenAIStub() as stub, AmplitudeCapture() as capture:
        client = openai.OpenAI(base_url=stub.base_url, api_key="sk-test", max_retries=0)
        amp = amplitude.Amplitude("key", Config(server_url=capture.url, flush_queue_size=1))
        ...
        events = capture.wait_for(1)

Canned answers use the module constants below (``STUB_TEXT``, ``PROMPT_TOKENS``...) so
tests can assert on them without repeating magic numbers.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "AmplitudeCapture",
    "OpenAIStub",
    "ProviderStub",
    "Recorded",
    "Reply",
    "SSE_DONE",
    "format_sse",
    "STUB_TEXT",
    "STUB_PIECES",
    "MODEL_SUFFIX",
    "PROMPT_TOKENS",
    "COMPLETION_TOKENS",
    "TOTAL_TOKENS",
    "CACHED_TOKENS",
    "REASONING_TOKENS",
    "EMBEDDING_VECTOR",
    "EMBEDDING_TOKENS_PER_INPUT",
]

LOOPBACK = "127.0.0.1"

STUB_TEXT = "Hello from the stub!"
STUB_PIECES = ("Hello", " from", " the", " stub!")
# The real API answers an alias ("gpt-4o") with a dated snapshot name.
MODEL_SUFFIX = "-2024-08-06"
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 5
TOTAL_TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS
CACHED_TOKENS = 4
REASONING_TOKENS = 2
# Binary fractions survive the float32 round trip of encoding_format="base64" exactly.
EMBEDDING_VECTOR = (0.0625, -0.125, 0.1875, -0.25, 0.3125, -0.375, 0.4375, -0.5)
EMBEDDING_TOKENS_PER_INPUT = 3
TOOL_ARGUMENTS = "{}"

SSE_DONE = "data: [DONE]\n\n"

# Framing is ours to decide; a replayed response must not smuggle its own.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_DATED_MODEL = re.compile(r"-\d{4}-\d{2}-\d{2}$")

_S = TypeVar("_S", bound="_LoopbackServer")

# Azure OpenAI serves the same routes under /openai, per deployment or not
# (/openai/deployments/<name>/chat/completions, /openai/responses, /openai/v1/...).
_AZURE_PREFIX = re.compile(r"^/openai(?:/deployments/[^/]+)?(?=/)")


def format_sse(data: Any, event: str | None = None) -> str:
    """Format one SSE block; ``data`` is sent as-is when a str, else as compact JSON."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n"


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it (header names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


@dataclass
class Reply:
    """A programmed answer; leave json/sse/raw unset to get the default body for the route.

    Exactly one body kind is used, in order of precedence ``sse`` (blocks written verbatim,
    each already formatted, e.g. with :func:`format_sse`), ``raw`` (bytes; set the
    content-type in ``headers``), ``json``. ``truncate_after`` applies to SSE bodies only
    (including the route's default stream): after that many blocks the connection is
    closed without the terminating chunk, which clients see as a dropped connection.
    ``hang`` accepts the request and never answers until the server stops.
    """

    status: int = 200
    json: Any = None
    sse: list[str] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate_after: int | None = None
    hang: bool = False

    @property
    def has_body(self) -> bool:
        return self.sse is not None or self.raw is not None or self.json is not None

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return cls(status=status, json=body, headers=dict(headers or {}))

    @classmethod
    def recorded(
        cls,
        status: int,
        body: str | bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Replay a recorded response (e.g. a vcrpy cassette entry) verbatim.

        A recorded SSE body works too: the SDK parses events from the whole body.
        """
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return cls(status=status, raw=raw, headers={**(headers or {}), "content-type": content_type})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of uploads must queue, not be reset (amplitude-analytics 1.3.0 loses a batch
    # whose connection is reset, without retry or callback).
    request_queue_size = 128

    def __init__(self, owner: _LoopbackServer, port: int = 0) -> None:
        self.owner = owner
        super().__init__((LOOPBACK, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so SSE can use chunked framing: a close-delimited body cannot tell a
    # dropped stream from a finished one, and truncation tests rely on that difference.
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def _dispatch(self) -> None:
        # The client may give up first (timeout, closed stream); nobody is left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.server.owner._handle(self)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean


class _LoopbackServer:
    """Shared lifecycle, request parsing, reply queue and response writing."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._replies: deque[Reply] = deque()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self: _S, port: int = 0) -> _S:
        """Bind 127.0.0.1 on `port` (default: a free one) and serve from a daemon thread.

        Restarting a stopped server on its old port brings it back where clients expect it.
        """
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(self, port)
        self._port = self._httpd.server_address[1]
        # A short poll interval keeps stop() (and so each test) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging or delayed handlers are released. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- plumbing shared by both fakes -------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        raise NotImplementedError

    def _push_reply(self, reply: Reply) -> None:
        with self._cond:
            self._replies.append(reply)

    def _pop_reply(self) -> Reply | None:
        with self._cond:
            return self._replies.popleft() if self._replies else None

    @staticmethod
    def _read_request(handler: _Handler) -> Recorded:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        raw = _read_body(handler, headers)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        return Recorded(handler.command, handler.path, headers, body, raw)

    def _respond(self, handler: _Handler, reply: Reply, extra_headers: dict[str, str]) -> None:
        if reply.delay and self._stopping.wait(reply.delay):
            return
        if reply.hang:
            self._stopping.wait()
            return
        if reply.sse is not None:
            content_type, body = "text/event-stream; charset=utf-8", b""
        elif reply.raw is not None:
            content_type, body = "application/octet-stream", reply.raw
        else:
            content_type, body = "application/json", json.dumps(reply.json).encode("utf-8")
        headers = {"content-type": content_type, **extra_headers}
        headers.update((k.lower(), v) for k, v in reply.headers.items() if k.lower() not in _FRAMING_HEADERS)

        handler.send_response(reply.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        # Closing after every response keeps SDK connection pools from reusing a
        # socket this server is about to drop.
        handler.send_header("connection", "close")
        if reply.sse is None:
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for index, block in enumerate(reply.sse):
            if reply.truncate_after is not None and index >= reply.truncate_after:
                break
            data = block.encode("utf-8")
            handler.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            handler.wfile.flush()
        if reply.truncate_after is None:
            handler.wfile.write(b"0\r\n\r\n")


def _read_body(handler: _Handler, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


# ----------------------------------------------------------------------------------------
# OpenAI
# ----------------------------------------------------------------------------------------


class ProviderStub(_LoopbackServer):
    """A provider's HTTP API: every request recorded, answered from a FIFO of overrides
    (:meth:`enqueue`) or else the route's default answer (:meth:`_default_reply`).

    A queued reply without a body alters the default answer instead of replacing it
    (``Reply(delay=1)``, ``Reply(truncate_after=3)``); a 2xx one keeps a failing route's
    own status, and a non-2xx one gets the provider's error body (:meth:`_error_reply`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._requests: list[Recorded] = []

    @property
    def base_url(self) -> str:
        """The value for the SDK's base URL option."""
        return self.url

    @property
    def requests(self) -> list[Recorded]:
        """Snapshot of every request received so far, oldest first."""
        with self._cond:
            return list(self._requests)

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next requests (FIFO); defaults resume once drained."""
        for reply in replies:
            self._push_reply(reply)

    def _default_reply(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def _error_reply(self, status: int) -> Reply:
        """The provider's error answer for a queued bodyless non-2xx reply."""
        return Reply.error(status, f"Stub error {status}")

    def _response_headers(self) -> dict[str, str]:
        """Headers every answer carries (e.g. the provider's request id)."""
        return {}

    def _handle(self, handler: _Handler) -> None:
        request = self._read_request(handler)
        with self._cond:
            self._requests.append(request)
        self._respond(handler, self._answer(self._pop_reply(), request), self._response_headers())

    def _answer(self, queued: Reply | None, request: Recorded) -> Reply:
        if queued is not None and queued.has_body:
            return queued
        if queued is not None and not 200 <= queued.status < 300:
            error = self._error_reply(queued.status)
            return dataclasses.replace(queued, json=error.json, sse=error.sse, raw=error.raw)
        default = self._default_reply(request)
        if queued is None:
            return default
        # A failing route (404, 400) keeps its own status rather than a 2xx lie.
        status = queued.status if default.status < 300 else default.status
        headers = {**default.headers, **queued.headers}
        return dataclasses.replace(
            queued, status=status, json=default.json, sse=default.sse, raw=default.raw, headers=headers
        )


class OpenAIStub(ProviderStub):
    """OpenAI-compatible server: realistic default answers plus a FIFO of overrides.

    Routes (POST, with or without the ``/v1`` prefix): ``/chat/completions``,
    ``/completions``, ``/embeddings``, ``/responses``, also under Azure's ``/openai`` and
    ``/openai/deployments/<name>`` prefixes (query strings such as ``?api-version=`` are
    ignored); anything else is a 404 with an OpenAI error body. Every request is recorded
    in :attr:`requests`.
    """

    @property
    def base_url(self) -> str:
        """Value for ``openai.OpenAI(base_url=...)``."""
        return f"{self.url}/v1"

    def replay(
        self,
        status: int,
        body: str | bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Enqueue a recorded response verbatim, e.g. from a vcrpy cassette."""
        self.enqueue(Reply.recorded(status, body, content_type, headers))

    def _default_reply(self, request: Recorded) -> Reply:
        return _default_reply(request)

    def _error_reply(self, status: int) -> Reply:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return Reply.error(status, f"Stub error {status}", kind)

    def _response_headers(self) -> dict[str, str]:
        return {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
        }


def _default_reply(request: Recorded) -> Reply:
    path = _AZURE_PREFIX.sub("", urlsplit(request.path).path, count=1)
    if path.startswith("/v1/"):
        path = path[len("/v1") :]
    route = _ROUTES.get(path) if request.method == "POST" else None
    if route is None:
        return Reply.error(404, f"Invalid URL ({request.method} {request.path})")
    if not isinstance(request.body, dict):
        return Reply.error(400, "We could not parse the JSON body of your request.")
    return route(request.body)


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _dated(model: Any) -> str:
    name = str(model or "gpt-4o")
    return name if _DATED_MODEL.search(name) else name + MODEL_SUFFIX


def _count_inputs(value: Any) -> int:
    """Items in an ``input``/``prompt`` that may be a str, a token list or a list of either."""
    if not isinstance(value, list):
        return 1
    if value and all(isinstance(item, int) for item in value):
        return 1
    return len(value)


def _function_tool(request: dict[str, Any]) -> str | None:
    """Name of the first function tool, if the request lets the model call one."""
    if request.get("tool_choice") == "none":
        return None
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function":
            # Chat nests the definition under "function"; the Responses API does not.
            nested = tool.get("function")
            spec: dict[str, Any] = nested if isinstance(nested, dict) else tool
            return str(spec.get("name") or "tool")
    return None


def _include_usage(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _chat_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": TOTAL_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _stream_tail(base: dict[str, Any], include_usage: bool) -> list[str]:
    """Closing blocks shared by chat and legacy completion streams."""
    tail = [format_sse({**base, "choices": [], "usage": _chat_usage()})] if include_usage else []
    return [*tail, SSE_DONE]


def _chat_completions(request: dict[str, Any]) -> Reply:
    n = int(request.get("n") or 1)
    tool = _function_tool(request)
    call_id = _new_id("call_")
    base: dict[str, Any] = {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _dated(request.get("model")),
        "service_tier": "default",
        "system_fingerprint": "fp_stub",
    }
    tool_call = {"id": call_id, "type": "function", "function": {"name": tool, "arguments": TOOL_ARGUMENTS}}

    if not request.get("stream"):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": STUB_TEXT,
            "refusal": None,
            "annotations": [],
        }
        if tool:
            message.update(content=None, tool_calls=[tool_call])
        finish = "tool_calls" if tool else "stop"
        choices = [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)
        ]
        return Reply(json={**base, "choices": choices, "usage": _chat_usage()})

    include_usage = _include_usage(request)
    base["object"] = "chat.completion.chunk"
    if include_usage:
        base["usage"] = None  # the real API adds this key to every chunk only when asked

    if tool:
        first = {"index": 0, **tool_call, "function": {"name": tool, "arguments": ""}}
        deltas: list[tuple[dict[str, Any], str | None]] = [
            ({"role": "assistant", "content": None, "refusal": None, "tool_calls": [first]}, None),
            ({"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGUMENTS}}]}, None),
            ({}, "tool_calls"),
        ]
    else:
        deltas = [({"role": "assistant", "content": "", "refusal": None}, None)]
        deltas += [({"content": piece}, None) for piece in STUB_PIECES]
        deltas.append(({}, "stop"))
    # Like the real API, each chunk carries a single choice; n > 1 interleaves them.
    blocks = [
        format_sse(
            {**base, "choices": [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        )
        for delta, finish in deltas
        for i in range(n)
    ]
    return Reply(sse=blocks + _stream_tail(base, include_usage))


def _completions(request: dict[str, Any]) -> Reply:
    choices_count = _count_inputs(request.get("prompt")) * int(request.get("n") or 1)
    base: dict[str, Any] = {
        "id": _new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": str(request.get("model") or "gpt-3.5-turbo-instruct"),
        "system_fingerprint": None,
    }

    def choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

    if not request.get("stream"):
        choices = [choice(i, STUB_TEXT, "stop") for i in range(choices_count)]
        return Reply(json={**base, "choices": choices, "usage": _chat_usage()})

    include_usage = _include_usage(request)
    if include_usage:
        base["usage"] = None
    pieces: list[tuple[str, str | None]] = [(piece, None) for piece in STUB_PIECES] + [("", "stop")]
    blocks = [
        format_sse({**base, "choices": [choice(i, text, finish)]})
        for text, finish in pieces
        for i in range(choices_count)
    ]
    return Reply(sse=blocks + _stream_tail(base, include_usage))


def _embeddings(request: dict[str, Any]) -> Reply:
    count = _count_inputs(request.get("input"))
    # The SDK asks for base64 unless the caller picks a format, then decodes it itself.
    vector: Any = list(EMBEDDING_VECTOR)
    if request.get("encoding_format") == "base64":
        vector = base64.b64encode(struct.pack(f"<{len(EMBEDDING_VECTOR)}f", *EMBEDDING_VECTOR)).decode(
            "ascii"
        )
    tokens = count * EMBEDDING_TOKENS_PER_INPUT
    return Reply(
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)],
            "model": str(request.get("model") or "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _responses(request: dict[str, Any]) -> Reply:
    tool = _function_tool(request)
    created = int(time.time())
    item: dict[str, Any]
    if tool:
        item = {
            "id": _new_id("fc_"),
            "type": "function_call",
            "status": "completed",
            "arguments": TOOL_ARGUMENTS,
            "call_id": _new_id("call_"),
            "name": tool,
        }
    else:
        item = {
            "id": _new_id("msg_"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": STUB_TEXT, "annotations": [], "logprobs": []}],
        }
    final = {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": created,
        "status": "completed",
        "background": False,
        "completed_at": created,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": _dated(request.get("model")),
        "output": [item],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_logprobs": 0,
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": PROMPT_TOKENS,
            "input_tokens_details": {"cached_tokens": CACHED_TOKENS, "cache_write_tokens": 0},
            "output_tokens": COMPLETION_TOKENS,
            "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
            "total_tokens": TOTAL_TOKENS,
        },
        "user": None,
        "metadata": request.get("metadata") or {},
    }
    if not request.get("stream"):
        return Reply(json=final)

    # The SDK's stream accumulator insists lifecycle events start with an empty output.
    pending = {**final, "status": "in_progress", "completed_at": None, "output": [], "usage": None}
    where = {"item_id": item["id"], "output_index": 0}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
    ]
    if tool:
        events += [
            (
                "response.output_item.added",
                {"output_index": 0, "item": {**item, "status": "in_progress", "arguments": ""}},
            ),
            ("response.function_call_arguments.delta", {**where, "delta": TOOL_ARGUMENTS}),
            ("response.function_call_arguments.done", {**where, "arguments": TOOL_ARGUMENTS, "name": tool}),
        ]
    else:
        part = {**where, "content_index": 0}
        events += [
            (
                "response.output_item.added",
                {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
            ),
            ("response.content_part.added", {**part, "part": {**item["content"][0], "text": ""}}),
        ]
        events += [
            ("response.output_text.delta", {**part, "delta": piece, "logprobs": []}) for piece in STUB_PIECES
        ]
        events += [
            ("response.output_text.done", {**part, "text": STUB_TEXT, "logprobs": []}),
            ("response.content_part.done", {**part, "part": item["content"][0]}),
        ]
    events += [
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": final}),
    ]
    # No [DONE] sentinel: the Responses API simply ends the stream.
    blocks = [
        format_sse({"type": kind, **data, "sequence_number": seq}, event=kind)
        for seq, (kind, data) in enumerate(events)
    ]
    return Reply(sse=blocks)


_ROUTES: dict[str, Callable[[dict[str, Any]], Reply]] = {
    "/chat/completions": _chat_completions,
    "/completions": _completions,
    "/embeddings": _embeddings,
    "/responses": _responses,
}


# ----------------------------------------------------------------------------------------
# Amplitude
# ----------------------------------------------------------------------------------------


class AmplitudeCapture(_LoopbackServer):
    """Fake of Amplitude's HTTP V2 / batch API that validates and records payloads.

    * ``payloads`` / ``raw_bodies``: accepted requests (parallel lists).
    * ``rejected``: payloads answered 400 by validation (missing ``api_key``/``events``,
      an event without ``event_type``, or without a ``user_id``/``device_id`` at least
      ``options.min_id_length`` (default 5) characters long).
    * ``failed``: payloads answered by an enqueued non-2xx or hanging reply.
    """

    def __init__(self) -> None:
        super().__init__()
        self._payloads: list[dict[str, Any]] = []
        self._raw_bodies: list[bytes] = []
        self._rejected: list[dict[str, Any]] = []
        self._failed: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        """Value for ``amplitude.Config(server_url=...)``; any POST path is accepted."""
        return f"{super().url}/2/httpapi"

    @property
    def payloads(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._payloads)

    @property
    def raw_bodies(self) -> list[bytes]:
        with self._cond:
            return list(self._raw_bodies)

    @property
    def rejected(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._rejected)

    @property
    def failed(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._failed)

    @property
    def events(self) -> list[dict[str, Any]]:
        """All accepted events, flattened in arrival order."""
        with self._cond:
            return self._accepted_events()

    def enqueue(self, status: int, body: Any = None, *, delay: float = 0.0, hang: bool = False) -> None:
        """Answer the next request with ``status`` (FIFO), bypassing validation.

        ``body`` may be JSON-able, str or bytes; when omitted a body the SDK understands
        is generated (it reads ``code`` from the body, not the HTTP status).
        """
        if isinstance(body, (str, bytes)):
            raw = body.encode("utf-8") if isinstance(body, str) else body
            self._push_reply(Reply(status=status, raw=raw, delay=delay, hang=hang))
        else:
            self._push_reply(Reply(status=status, json=body, delay=delay, hang=hang))

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` events were accepted and return all accepted events."""
        with self._cond:
            if self._cond.wait_for(lambda: len(self._accepted_events()) >= n, timeout):
                return self._accepted_events()
            got = self._accepted_events()
            raise AssertionError(
                f"expected at least {n} Amplitude event(s) within {timeout}s, got {len(got)}: "
                f"{[event.get('event_type') for event in got]}; rejected payloads: {len(self._rejected)}, "
                f"failed payloads: {len(self._failed)}"
            )

    def _accepted_events(self) -> list[dict[str, Any]]:
        return [event for payload in self._payloads for event in payload.get("events") or []]

    def _handle(self, handler: _Handler) -> None:
        request = self._read_request(handler)
        if request.method != "POST":
            self._respond(handler, Reply(status=404, json={"code": 404, "error": "Not found"}), {})
            return
        payload = (
            request.body
            if isinstance(request.body, dict)
            else {"raw": request.raw.decode("utf-8", "replace")}
        )
        reply = self._pop_reply()
        if reply is None:
            error = _amplitude_error(request.body)
            reply = Reply(status=400, json=error) if error else Reply()
            bucket = self._rejected if error else self._payloads
        else:
            accepted = 200 <= reply.status < 300 and not reply.hang
            bucket = self._payloads if accepted else self._failed
        with self._cond:
            bucket.append(payload)
            if bucket is self._payloads:
                self._raw_bodies.append(request.raw)
            self._cond.notify_all()
        if not reply.has_body:
            reply = dataclasses.replace(reply, json=_amplitude_body(reply.status, payload, request.raw))
        self._respond(handler, reply, {})


def _amplitude_body(status: int, payload: dict[str, Any], raw: bytes) -> dict[str, Any]:
    # The SDK trusts the "code" in the body over the HTTP status, so always send one.
    if not 200 <= status < 300:
        return {"code": status, "error": BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]}
    return {
        "code": status,
        "events_ingested": len(payload.get("events") or []),
        "payload_size_bytes": len(raw),
        "server_upload_time": int(time.time() * 1000),
    }


def _amplitude_error(payload: Any) -> dict[str, Any] | None:
    """The 400 body the real API would send for ``payload``, or None if it is valid."""
    if not isinstance(payload, dict):
        return {"code": 400, "error": "Invalid JSON request body"}
    for name in ("api_key", "events"):
        if not payload.get(name):
            return {"code": 400, "error": "Request missing required field", "missing_field": name}
    events = payload["events"]
    if not isinstance(events, list):
        return {"code": 400, "error": "Request missing required field", "missing_field": "events"}
    options = payload.get("options") or {}
    min_length = int(options.get("min_id_length") or 5)
    invalid: dict[str, list[int]] = {}
    missing: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            missing.setdefault("event_type", []).append(index)
            continue
        if not event.get("event_type"):
            missing.setdefault("event_type", []).append(index)
        ids = [event.get(key) for key in ("user_id", "device_id")]
        if not any(isinstance(value, str) and len(value) >= min_length for value in ids):
            present = [key for key in ("user_id", "device_id") if event.get(key) is not None]
            for key in present or ["device_id"]:
                invalid.setdefault(key, []).append(index)
    if not invalid and not missing:
        return None
    error: dict[str, Any] = {"code": 400, "error": "Invalid field values on some events"}
    if invalid:
        error["events_with_invalid_fields"] = invalid
    if missing:
        error["events_with_missing_fields"] = missing
    return error
