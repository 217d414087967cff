"""Transparent proxies that observe a stream's chunks and end its call exactly once.

The caller keeps an object that is `isinstance` of the SDK's stream class, iterates,
enters and closes exactly as before. The call ends when the stream is exhausted,
fails, is closed (directly or by its context manager), is garbage-collected, or the
interpreter exits with it still open.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any, Callable

import wrapt

from . import _dispatch
from ._call import Call
from ._log import report_failure

_perf = time.perf_counter

# wrapt 2 types its proxies as generics; wrapt 1 (still widely pinned) is not subscriptable.
if TYPE_CHECKING:
    ObjectProxy = wrapt.ObjectProxy[Any]
else:
    ObjectProxy = wrapt.ObjectProxy


def _fold_failed(call: Call, exc: Exception) -> None:
    # The chunk still reaches the caller; the event carries what was folded so far.
    call.fold = None
    report_failure(f"reading a {call.provider.name} stream chunk", exc)


def watch(proxy: object, call: Call) -> None:
    """End `call` when `proxy` (what reads the stream) is garbage-collected, or at exit, if
    nothing ended it before."""
    # Ending the call drops this weakref, so its callback only fires for a proxy
    # collected while its stream is still open.
    _dispatch.dispatcher.open_streams[call] = weakref.ref(proxy, lambda _ref: call.finish())


def _observed(next_item: Callable[[], Any], call: Call) -> Iterator[Any]:
    """The chunks of a synchronous stream, observed: what iterating the proxy runs.

    A generator, not a `__next__` method: a `for` loop resumes it directly (~50 ns a chunk)
    instead of calling the proxy's method and reading its attributes (~190 ns).
    """
    while True:
        try:
            item = next_item()
        except StopIteration:
            call.completed = True
            call.finish()
            return
        except BaseException as exc:
            call.finish(error=exc)
            raise
        # Inlined (a function call per chunk is a fifth of this path's cost).
        if call.first_chunk_at is None:
            call.first_chunk_at = _perf()
        fold = call.fold
        if fold is not None:
            try:
                if fold(call.acc, item):
                    continue
            except Exception as exc:
                _fold_failed(call, exc)
        yield item


def _async_step(next_item: Callable[[], Awaitable[Any]], call: Call) -> Callable[[], Awaitable[Any]]:
    """The per-chunk work of an asynchronous stream, as a closure: attribute reads on a
    wrapt proxy cost ~100 ns each, so `__anext__` makes one and the rest reads closure
    cells. (Not an async generator like `_observed`: the event loop, not the garbage
    collector, would finalize one left unfinished.)"""

    async def step() -> Any:
        while True:
            try:
                item = await next_item()
            except StopAsyncIteration:
                call.completed = True
                call.finish()
                raise
            except BaseException as exc:
                call.finish(error=exc)
                raise
            if call.first_chunk_at is None:
                call.first_chunk_at = _perf()
            fold = call.fold
            if fold is None:
                return item
            try:
                if not fold(call.acc, item):
                    return item
            except Exception as exc:
                _fold_failed(call, exc)
                return item

    return step


class TrackedStream(ObjectProxy):
    """Proxy of a synchronous stream (anything iterable, usually with close())."""

    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        # What iterating the stream itself would use: for the SDKs' streams a generator,
        # cheaper per chunk than their `__next__` (a method calling that generator's).
        next_item = iter(wrapped).__next__
        self._self_call = call
        self._self_chunks = _observed(next_item, call)
        call.stream = True
        # The generator, not the proxy: a `for` loop holds only the generator, and it lives
        # as long as the proxy does.
        watch(self._self_chunks, call)

    def __iter__(self) -> Iterator[Any]:
        # Not `self`: like the SDK's own streams, whose `__iter__` is a generator.
        return self._self_chunks

    def __next__(self) -> Any:
        return next(self._self_chunks)

    def __enter__(self) -> TrackedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_call.finish()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.finish()


class TrackedAsyncStream(ObjectProxy):
    """Proxy of an asynchronous stream (async-iterable, usually with async close())."""

    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        next_item = getattr(wrapped, "__anext__", None)
        if next_item is None:
            next_item = wrapped.__aiter__().__anext__
        self._self_call = call
        self._self_step = _async_step(next_item, call)
        call.stream = True
        watch(self, call)

    def __aiter__(self) -> TrackedAsyncStream:
        return self

    def __anext__(self) -> Awaitable[Any]:
        return self._self_step()

    async def __aenter__(self) -> TrackedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_call.finish()

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_call.finish()

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_call.finish()


def track_stream(stream: Any, call: Call, is_async: bool | None = None) -> Any:
    """Wrap `stream` so that `call` observes it. Async-ness is detected unless given."""
    if is_async is None:
        is_async = hasattr(stream, "__aiter__") and not hasattr(stream, "__iter__")
    return TrackedAsyncStream(stream, call) if is_async else TrackedStream(stream, call)
