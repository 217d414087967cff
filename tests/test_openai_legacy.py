"""The pre-1.0 openai SDK (0.27-0.28) against the loopback stub: the events Amplitude receives.

Runs only where openai < 1 is installed (nox sessions `openai-0.27`, `openai-0.28`); the SDK is
configured the way its users did it, at module level (`openai.api_key`, `openai.api_base`)
and per call (`api_key=`, `api_base=`, `api_type="azure"`, `engine=`).
"""

from __future__ import annotations

import gc
import inspect
import types
from collections.abc import Iterator
from typing import Any

import pytest

import amplitude.ai
from amplitude.ai._patching import tracking_switch
from conftest import OPENAI_KEY, OPENAI_ORG, STUB_TOKENS, check_dropped_stream, props, sent, tokens
from loopback import EMBEDDING_TOKENS_PER_INPUT, MODEL_SUFFIX, STUB_PIECES, STUB_TEXT, OpenAIStub, Reply

openai = pytest.importorskip("openai")
if hasattr(openai, "OpenAI"):
    pytest.skip(
        f"openai {openai.version.VERSION} is not the pre-1.0 SDK (nox sessions openai-0.2x run these)",
        allow_module_level=True,
    )

# Credentials only these tests use; "DO-NOT-LEAK" puts them under conftest's privacy scan.
# None looks like an OpenAI key, so only the provider's `secrets` can scrub them.
CALL_KEY = "per-call-key-DO-NOT-LEAK-5150"
AZURE_KEY = "azure-api-key-DO-NOT-LEAK-0d1e"
AZURE_AD_TOKEN = "entra-token-DO-NOT-LEAK-7a7a"
DEPLOYMENT = "prod-gpt4o"
AZURE_API_VERSION = "2023-05-15"

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello. SECRET-PROMPT-CONTENT"},
]
# What the legacy SDK takes per call besides request fields: never event properties.
SDK_OPTIONS = ("api_key", "api_base", "api_type", "api_version", "organization", "engine", "deployment_id")


@pytest.fixture
def legacy(stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The SDK configured at module level, as its documentation showed, against the stub."""
    settings = {
        "api_key": OPENAI_KEY,
        "organization": OPENAI_ORG,
        "api_base": stub.base_url,
        "api_type": "open_ai",
        "api_version": None,
        "proxy": None,
    }
    for name, value in settings.items():
        monkeypatch.setattr(openai, name, value)
    yield openai
    _forget_http_session()


def _forget_http_session() -> None:
    # requests' session is cached per thread with the proxy set when it was made.
    vars(openai.api_requestor._thread_context).pop("session", None)


def azure_options(stub: OpenAIStub) -> dict[str, Any]:
    return {"api_type": "azure", "api_base": stub.url, "api_version": AZURE_API_VERSION, "api_key": AZURE_KEY}


def test_methods_are_patched_on_the_classes_users_call_and_nowhere_else() -> None:
    from openai.api_resources.abstract.engine_api_resource import EngineAPIResource

    for cls in (openai.ChatCompletion, openai.Completion, openai.Embedding):
        for name in ("create", "acreate"):
            wrapper = cls.__dict__[name]
            switch = tracking_switch(wrapper)
            assert switch is not None, f"{cls.__name__}.{name}"
            assert isinstance(wrapper, classmethod) and isinstance(switch.original, classmethod)
    # The subclasses call these through super(): patching them too would track twice.
    for name in ("create", "acreate"):
        assert tracking_switch(EngineAPIResource.__dict__[name]) is None


def test_uninstrument_restores_the_classmethods() -> None:
    switch = tracking_switch(openai.ChatCompletion.__dict__["create"])
    assert switch is not None
    original = switch.original
    amplitude.ai.uninstrument()
    try:
        assert openai.ChatCompletion.__dict__["create"] is original
    finally:
        amplitude.ai.instrument()
    rewrapped = tracking_switch(openai.ChatCompletion.__dict__["create"])
    assert rewrapped is not None and rewrapped.original is original


def test_chat_create_event(tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub) -> None:
    completion = legacy.ChatCompletion.create(
        model="gpt-4o", messages=MESSAGES, temperature=0.2, max_tokens=50, seed=7, user="end-user-1234"
    )
    assert completion.choices[0].message.content == STUB_TEXT
    assert stub.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"

    (event,) = sent(capture, 1)
    assert event["user_id"] == "end-user-1234"
    p = event["event_properties"]
    assert p["provider"] == "openai"
    assert (p["operation"], p["api"]) == ("chat_completion", "ChatCompletion.create")
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX
    assert p["stream"] is False and p["latency_ms"] > 0
    assert tokens(p) == STUB_TOKENS
    assert (p["message_count"], p["last_message_role"]) == (2, "user")
    assert (p["finish_reason"], p["tool_call_count"]) == ("stop", 0)
    assert p["response_preview"] == STUB_TEXT
    assert (p["temperature"], p["max_tokens"], p["seed"]) == (0.2, 50, 7)
    assert p["server_host"] == "127.0.0.1"
    assert "deployment" not in p
    assert None not in p.values()
    assert "SECRET-PROMPT-CONTENT" not in repr(event)


def test_per_call_configuration(tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub) -> None:
    legacy.api_key = None
    legacy.api_base = "http://127.0.0.1:9/unused"
    legacy.ChatCompletion.create(
        model="gpt-4o",
        messages=MESSAGES,
        api_key=CALL_KEY,
        api_base=stub.base_url,
        organization=OPENAI_ORG,
        request_timeout=30,
        headers={"X-Trace": "t-1"},
    )
    request = stub.requests[-1]
    assert request.headers["authorization"] == f"Bearer {CALL_KEY}"
    assert request.headers["x-trace"] == "t-1"
    (p,) = props(capture)
    assert p["server_host"] == "127.0.0.1" and p["model"] == "gpt-4o" + MODEL_SUFFIX
    for option in (*SDK_OPTIONS, "request_timeout", "headers"):
        assert option not in p


@pytest.mark.parametrize(
    "key_options",
    [
        pytest.param({"api_key": CALL_KEY}, id="per-call-key"),
        pytest.param({}, id="module-level-key"),
    ],
)
def test_keys_echoed_in_errors_are_scrubbed(
    tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub, key_options: dict[str, str]
) -> None:
    key = key_options.get("api_key", CALL_KEY)
    legacy.api_key = CALL_KEY if not key_options else None
    stub.enqueue(Reply.error(401, f"Incorrect API key provided: {key}.", code="invalid_api_key"))
    with pytest.raises(openai.error.AuthenticationError):
        legacy.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, **key_options)
    (p,) = props(capture)
    assert p["error"].endswith("Incorrect API key provided: [REDACTED].")


def test_completion_and_embedding(tracked: Any, legacy: Any, capture: Any) -> None:
    completion = legacy.Completion.create(model="gpt-3.5-turbo-instruct", prompt="Say hello.", n=1)
    assert completion.choices[0].text == STUB_TEXT
    result = legacy.Embedding.create(
        model="text-embedding-3-small", input=["a", "b", "c"], encoding_format="float"
    )
    assert len(result.data) == 3
    first, second = props(capture, 2)
    assert (first["operation"], first["api"]) == ("completion", "Completion.create")
    assert first["response_preview"] == STUB_TEXT and first["finish_reason"] == "stop"
    assert first["message_count"] == 1 and first["n"] == 1
    assert (second["operation"], second["api"]) == ("embedding", "Embedding.create")
    assert second["input_count"] == 3 and second["encoding_format"] == "float"
    assert second["input_tokens"] == 3 * EMBEDDING_TOKENS_PER_INPUT
    assert "response_preview" not in second and "message_count" not in second


def test_embedding_default_base64_is_decoded_by_the_sdk_as_untracked(
    tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub
) -> None:
    pytest.importorskip("numpy", reason="the legacy SDK decodes base64 embeddings with numpy")
    result = legacy.Embedding.create(model="text-embedding-3-small", input="one")
    assert stub.requests[-1].body["encoding_format"] == "base64", "the SDK's own default"
    assert len(result.data[0].embedding) == 8
    (p,) = props(capture)
    assert "encoding_format" not in p, "the caller did not choose one"


def test_stream_to_the_end(tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub) -> None:
    stream = legacy.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, types.GeneratorType)
    text = "".join(chunk.choices[0].delta.get("content", "") for chunk in stream)
    assert text == STUB_TEXT
    assert "stream_options" not in stub.requests[-1].body, "not OpenAI's own host: untouched"
    (p,) = props(capture)
    assert p["api"] == "ChatCompletion.create"
    assert p["stream"] is True and p["stream_completed"] is True
    assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]
    assert (p["response_preview"], p["finish_reason"]) == (STUB_TEXT, "stop")
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX
    assert "input_tokens" not in p


def test_completion_stream_with_usage_asked_by_the_caller(tracked: Any, legacy: Any, capture: Any) -> None:
    chunks = list(
        legacy.Completion.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1]["choices"] == [], "the caller sees the usage chunk it asked for"
    (p,) = props(capture)
    assert p["operation"] == "completion" and p["response_preview"] == STUB_TEXT
    assert tokens(p) == STUB_TOKENS


def test_stream_closed_early_and_abandoned(tracked: Any, legacy: Any, capture: Any) -> None:
    closed = legacy.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(closed)
    closed.close()
    abandoned = legacy.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(abandoned)
    del abandoned
    gc.collect()
    for p in props(capture, 2):
        assert p["stream"] is True and p["stream_completed"] is False
        assert "error" not in p


def test_stream_dropped_mid_way(tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub) -> None:
    check_dropped_stream(
        stub, capture, lambda: legacy.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, stream=True)
    )


def test_http_error_is_recorded_and_reraised_unchanged(
    tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub
) -> None:
    stub.enqueue(Reply.error(404, "The model `nope` does not exist", code="model_not_found"))
    with pytest.raises(openai.error.InvalidRequestError) as raised:
        legacy.ChatCompletion.create(model="nope", messages=MESSAGES)
    assert raised.value.http_status == 404
    assert raised.traceback[-1].name != "wrapper", "the SDK's frame stays the innermost"
    (p,) = props(capture)
    assert (p["error_type"], p["http_status"]) == ("InvalidRequestError", 404)
    assert "does not exist" in p["error"]
    assert p["model"] == "nope"
    assert p["request_id"] == stub_request_id(raised.value)


def stub_request_id(error: Any) -> str:
    request_id: str = error.headers["x-request-id"]
    assert request_id.startswith("req_")
    return request_id


def test_model_warming_up_is_retried_inside_one_tracked_call(
    tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub
) -> None:
    # 409 is the SDK's TryAgain, retried by ChatCompletion.create around super().create().
    stub.enqueue(Reply.error(409, "The model is loading."), Reply.error(409, "Still loading."))
    completion = legacy.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, timeout=30)
    assert completion.choices[0].message.content == STUB_TEXT
    assert len(stub.requests) == 3
    (p,) = props(capture)
    assert "error" not in p and p["response_preview"] == STUB_TEXT


async def test_acreate_and_async_stream(tracked: Any, legacy: Any, capture: Any) -> None:
    completion = await legacy.ChatCompletion.acreate(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == STUB_TEXT
    stream = await legacy.ChatCompletion.acreate(model="gpt-4o", messages=MESSAGES, stream=True)
    assert inspect.isasyncgen(stream)
    pieces = [chunk.choices[0].delta.get("content", "") async for chunk in stream]
    assert "".join(pieces) == STUB_TEXT
    embedding = await legacy.Embedding.acreate(
        model="text-embedding-3-small", input="one", encoding_format="float"
    )
    assert len(embedding.data) == 1
    first, second, third = props(capture, 3)
    assert first["api"] == second["api"] == "ChatCompletion.acreate"
    assert first["stream"] is False and tokens(first) == STUB_TOKENS
    assert second["stream"] is True and second["stream_completed"] is True
    assert second["response_preview"] == STUB_TEXT
    assert third["api"] == "Embedding.acreate" and third["input_count"] == 1


async def test_async_stream_closed_early(tracked: Any, legacy: Any, capture: Any) -> None:
    stream = await legacy.Completion.acreate(model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True)
    first = await stream.__anext__()
    assert first.choices[0].text == STUB_PIECES[0]
    await stream.aclose()
    (p,) = props(capture)
    assert p["api"] == "Completion.acreate" and p["stream_completed"] is False
    assert p["response_preview"] == STUB_PIECES[0]


async def test_async_error(tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub) -> None:
    stub.enqueue(Reply.error(429, "Rate limit reached", type_="requests"))
    with pytest.raises(openai.error.RateLimitError):
        await legacy.ChatCompletion.acreate(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert (p["error_type"], p["http_status"]) == ("RateLimitError", 429)


# -- Azure ------------------------------------------------------------------------------------


def test_azure_chat(tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub) -> None:
    completion = legacy.ChatCompletion.create(engine=DEPLOYMENT, messages=MESSAGES, **azure_options(stub))
    assert completion.choices[0].message.content == STUB_TEXT
    request = stub.requests[-1]
    assert (
        request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={AZURE_API_VERSION}"
    )
    assert request.headers["api-key"] == AZURE_KEY
    (p,) = props(capture)
    assert p["provider"] == "azure_openai"
    assert p["deployment"] == DEPLOYMENT
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX, "the model the response names"
    assert p["server_host"] == "127.0.0.1"
    assert tokens(p) == STUB_TOKENS


def test_azure_module_level_config_and_deployment_id(
    tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub
) -> None:
    legacy.api_type, legacy.api_base, legacy.api_version, legacy.api_key = (
        "azure",
        stub.url,
        AZURE_API_VERSION,
        AZURE_KEY,
    )
    legacy.Embedding.create(deployment_id="embed-small", input=["a", "b"], encoding_format="float")
    stream = legacy.ChatCompletion.create(deployment_id=DEPLOYMENT, messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.get("content", "") for c in stream if c.choices) == STUB_TEXT
    assert "stream_options" not in stub.requests[-1].body
    embedding, chat = props(capture, 2)
    assert (embedding["provider"], embedding["deployment"]) == ("azure_openai", "embed-small")
    assert (chat["provider"], chat["deployment"]) == ("azure_openai", DEPLOYMENT)
    assert chat["response_preview"] == STUB_TEXT


def test_azure_ad_token_never_reaches_an_event(
    tracked: Any, legacy: Any, capture: Any, stub: OpenAIStub
) -> None:
    options = {**azure_options(stub), "api_type": "azure_ad", "api_key": AZURE_AD_TOKEN}
    stub.enqueue(Reply.error(401, f"Token {AZURE_AD_TOKEN} has expired."))
    with pytest.raises(openai.error.AuthenticationError):
        legacy.ChatCompletion.create(engine=DEPLOYMENT, messages=MESSAGES, **options)
    assert stub.requests[-1].headers["authorization"] == f"Bearer {AZURE_AD_TOKEN}"
    (p,) = props(capture)
    assert p["provider"] == "azure_openai" and p["http_status"] == 401
    assert "Token [REDACTED] has expired." in p["error"]


# -- usage on OpenAI's own API ----------------------------------------------------------------


@pytest.fixture
def api_openai_com(legacy: Any, stub: OpenAIStub) -> Any:
    """OpenAI's own host as the API base, reaching the stub through an HTTP proxy."""
    _forget_http_session()
    legacy.api_base = "http://api.openai.com/v1"
    legacy.proxy = {"http": stub.url}
    return legacy


def test_usage_is_requested_and_hidden_on_openai(
    tracked: Any, api_openai_com: Any, capture: Any, stub: OpenAIStub
) -> None:
    chunks = list(api_openai_com.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert stub.requests[-1].body["stream_options"] == {"include_usage": True}
    assert all(chunk["choices"] for chunk in chunks), "the usage-only chunk is not shown to the caller"
    (p,) = props(capture)
    assert tokens(p) == STUB_TOKENS
    assert p["server_host"] == "api.openai.com"


def test_untracked_request_is_unchanged(api_openai_com: Any, stub: OpenAIStub) -> None:
    list(api_openai_com.ChatCompletion.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert "stream_options" not in stub.requests[-1].body
