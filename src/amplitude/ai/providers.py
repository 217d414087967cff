"""The interface for provider integrations that live outside this package.

A third-party package teaches `amplitude.ai` a new SDK the way the built-in providers
are written: one provider module declaring a `Provider` (what to patch, and pure
functions that read a call into event properties), registered under the
``amplitude.ai.providers`` entry-point group. The import hook then loads it like a
built-in one: only once its SDK is imported, with the same wrapping, streams, event
schema, dispatch and guarantees.

Register an `Entry` (not the provider module itself, which is only imported once the
SDK is)::

    # pyproject.toml of amplitude-toyllm
    [project.entry-points."amplitude.ai.providers"]
    toyllm = "amplitude_toyllm:ENTRY"

    # amplitude_toyllm/__init__.py: keep it light, it is imported when tracking starts
    from amplitude.ai.providers import Entry

    ENTRY = Entry(name="toyllm", sdk="toyllm", distribution="toyllm",
                  module="amplitude_toyllm.provider", supported=">=1.0,<2")

    # amplitude_toyllm/provider.py: must not import the SDK itself
    from amplitude.ai.providers import Call, Method, Provider

    def begin(call: Call, instance, kwargs) -> None:
        call.request = dict(kwargs)          # snapshot: the caller may mutate kwargs later

    def on_result(call: Call, result):
        call.finish(response=result)         # or: return track_stream(result, call)
        return result

    def properties(call: Call) -> dict:      # runs off the caller's path
        return {"model": call.request.get("model"), ...}

    PROVIDER = Provider(
        name="toyllm",
        methods=(Method("toyllm.client", "Client", "complete", "complete", "chat_completion"),),
        begin=begin, on_result=on_result, properties=properties,
        secrets=lambda call: [call.instance.api_key],
    )

Entry points are read once per process, when tracking starts (`track()`, `tracking()`,
`instrument()` or the zero-code start-up at the first provider SDK import), never on
``import amplitude.ai``. A zero-code process that only uses a third-party SDK names it in
``AMPLITUDE_AI_PROVIDERS``; tracking then starts with the interpreter. An entry that
fails to load, or claims a built-in provider's name, is logged and skipped.
"""

from __future__ import annotations

from typing import Any

from ._call import Call
from ._provider import Method, Provider
from ._providers import ENTRY_POINT_GROUP, Entry

__all__ = ["ENTRY_POINT_GROUP", "Call", "Entry", "Method", "Provider", "track_stream"]


def track_stream(stream: Any, call: Call, is_async: bool | None = None) -> Any:
    """Return a transparent proxy of `stream` (an iterator or async iterator of chunks)
    for `on_result` to hand the caller; it ends `call` when the stream is exhausted, fails,
    is closed, is garbage-collected or is still open at exit.

    Set ``call.stream = True``, ``call.acc`` (your accumulator) and ``call.fold`` (a
    ``fold(acc, chunk) -> bool`` run on each chunk as it passes; True hides the chunk from
    the caller) in `begin`. Async-ness is detected unless `is_async` is given.
    """
    from ._streams import track_stream as _track_stream  # wrapt: only once a stream exists

    return _track_stream(stream, call, is_async)
