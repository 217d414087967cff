"""The manual API: the same `llm_operation` event for calls no provider module patches
(a custom HTTP client, a self-hosted model, a provider without an SDK)."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import _state
from ._log import report_failure

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType

    from ._call import Call
    from ._provider import Method, Provider

F = TypeVar("F", bound=Callable[..., Any])


class _Request:
    """What the caller told us about the call: event properties, and who made it."""

    __slots__ = ("props", "user_id")

    def __init__(self, props: dict[str, Any], user_id: str | None) -> None:
        self.props = props
        self.user_id = user_id


def _properties(call: Call) -> dict[str, Any]:
    return dict(call.request.props)


def _user_id(call: Call) -> str | None:
    user_id: str | None = call.request.user_id
    return user_id


def _no_secrets(call: Call) -> Iterable[str]:
    return ()


def _unused(*args: Any) -> Any:
    raise AssertionError("manual operations are not patched into any SDK")


@functools.cache
def _manual_provider() -> Provider:
    # Built on first use: `amplitude.ai` imports this module, and the provider
    # machinery (dataclasses, the dispatcher) should load only once tracking is used.
    from ._provider import Provider

    return Provider(
        name="custom",
        methods=(),
        begin=_unused,
        on_result=_unused,
        properties=_properties,
        secrets=_no_secrets,
        user_id=_user_id,
    )


@functools.lru_cache(maxsize=256)
def _method(api: str, operation: str) -> Method:
    from ._provider import Method

    return Method(module="", cls="", name="", api=api, operation=operation)


class Operation:
    """Measure an LLM call this package does not patch, as the same ``llm_operation`` event.

    Use it as a context manager (``with`` / ``async with``) or a decorator (sync or async),
    via its public name `amplitude.ai.operation`::

        with amplitude.ai.operation(provider="vllm", model="llama-3-70b") as op:
            reply = my_client.generate(prompt)
            op.set_usage(input_tokens=reply.prompt_tokens, output_tokens=reply.completion_tokens)
            op.set_response(text=reply.text, finish_reason=reply.stop_reason)

        @amplitude.ai.operation(provider="my-gateway", operation="embedding")
        def embed(texts): ...

    Latency is measured around the block; an exception raised inside is recorded
    (``error``, ``error_type``, ``http_status`` from its ``status_code``) and re-raised.
    ``op.first_token()`` marks a stream's first token. `api` defaults to
    ``"<provider>.<operation>"``; `user_id` overrides the tracked identity; extra keyword
    arguments become event properties (scalars only). Nothing is recorded while
    tracking is off.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str | None = None,
        operation: str = "chat_completion",
        api: str | None = None,
        user_id: str | None = None,
        **properties: Any,
    ) -> None:
        self._spec = {"provider": provider, "model": model, "operation": operation, "api": api}
        self._user_id = user_id
        self._properties = properties
        self._call: Call | None = None

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> Operation:
        binding = _state.active()
        if binding is None:
            return self
        try:
            spec = self._spec
            method = _method(spec["api"] or f"{spec['provider']}.{spec['operation']}", spec["operation"])
            from ._call import Call

            call = Call(_manual_provider(), method, binding, None)
            props = {"provider": spec["provider"], "model": spec["model"], **self._properties}
            call.request = _Request(props, self._user_id)
            self._call = call
        except Exception as exc:
            report_failure("starting a manual operation", exc)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.completed = call.stream and exc is None
            call.finish(error=exc)

    async def __aenter__(self) -> Operation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- what the caller learns during the call ---------------------------------------------
    def set(self, **properties: Any) -> Operation:
        """Add event properties (scalars; e.g. ``finish_reason="stop"``, ``temperature=0.2``)."""
        if self._call is not None:
            self._call.request.props.update(properties)
        return self

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> Operation:
        """Token counts; `input_tokens` counts all input, cached included. The total
        defaults to input + output."""
        if total_tokens is None and input_tokens is not None and output_tokens is not None:
            total_tokens = input_tokens + output_tokens
        return self.set(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total_tokens,
            cached_input_tokens=cached_input_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            reasoning_tokens=reasoning_tokens,
        )

    def set_response(
        self,
        *,
        text: str | None = None,
        model: str | None = None,
        finish_reason: str | None = None,
        tool_call_count: int | None = None,
        request_id: str | None = None,
    ) -> Operation:
        """What came back: `text` becomes the (500-character) response preview."""
        preview = text[:500] if isinstance(text, str) and text else None
        return self.set(
            response_preview=preview,
            model=model or (self._call.request.props.get("model") if self._call else None),
            finish_reason=finish_reason,
            tool_call_count=tool_call_count,
            request_id=request_id,
        )

    def first_token(self) -> Operation:
        """Mark the first streamed token now: sets `stream` and `time_to_first_token_ms`."""
        call = self._call
        if call is not None and call.first_chunk_at is None:
            call.stream = True
            call.first_chunk_at = time.perf_counter()
        return self

    # -- decorator ------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        """Measure every call of `func` (sync or async) as one operation."""

        def fresh() -> Operation:
            return Operation(user_id=self._user_id, **self._spec, **self._properties)  # type: ignore[arg-type]

        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def record(
    *,
    provider: str,
    model: str | None = None,
    operation: str = "chat_completion",
    latency_ms: float | None = None,
    error: BaseException | None = None,
    user_id: str | None = None,
    **properties: Any,
) -> None:
    """Record an LLM call that already finished (e.g. from a callback or a log line).

    Takes the arguments of `Operation` plus `latency_ms` and `error`; other keyword
    arguments (``input_tokens=...``, ``finish_reason=...``) become event properties.
    """
    op = Operation(provider=provider, model=model, operation=operation, user_id=user_id, **properties)
    op.__enter__()
    call = op._call
    if call is None:
        return
    if latency_ms is not None:
        call.started_at -= latency_ms / 1000.0
        call.wall_time -= latency_ms / 1000.0
    op.__exit__(type(error) if error else None, error, None)
