"""Azure OpenAI through the v1+ SDK's `AzureOpenAI` / `AsyncAzureOpenAI` clients.

The stub answers Azure's routes (`/openai/deployments/<name>/chat/completions?api-version=`),
so the real Azure client code (URL building, `api-key` header, Entra ID tokens) runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from conftest import has_resource, openai_v1, props, proxy_http_client, requires_sdk
from loopback import MODEL_SUFFIX, PROMPT_TOKENS, STUB_PIECES, STUB_TEXT, OpenAIStub, Reply, format_sse

openai = openai_v1()

# "DO-NOT-LEAK" puts them under conftest's privacy scan. None looks like an OpenAI key
# or a bearer header, so only the provider's `secrets` can keep them out of events.
AZURE_KEY = "azure-key-DO-NOT-LEAK-3b5d9f"
ENTRA_TOKEN = "entra-token-DO-NOT-LEAK-c0ffee"
API_VERSION = "2024-06-01"
DEPLOYMENT = "prod-gpt4o"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def azure_client(stub: OpenAIStub, *, is_async: bool = False, **options: Any) -> Any:
    client_class = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
    settings: dict[str, Any] = {"api_version": API_VERSION, "max_retries": 0}
    if "base_url" not in options:
        settings["azure_endpoint"] = stub.url
    if not {"azure_ad_token", "azure_ad_token_provider"} & options.keys():
        settings["api_key"] = AZURE_KEY
    return client_class(**settings, **options)


@pytest.fixture
def azure(stub: OpenAIStub) -> Iterator[Any]:
    with azure_client(stub, azure_deployment=DEPLOYMENT) as client:
        yield client


def test_chat_on_a_deployment(tracked: Any, azure: Any, capture: Any, stub: OpenAIStub) -> None:
    completion = azure.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0.5)
    assert completion.choices[0].message.content == STUB_TEXT
    request = stub.requests[-1]
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}"
    assert request.headers["api-key"] == AZURE_KEY
    (p,) = props(capture)
    assert p["provider"] == "azure_openai"
    assert p["deployment"] == DEPLOYMENT
    assert p["model"] == completion.model == "gpt-4o" + MODEL_SUFFIX, "the model the response names"
    assert p["server_host"] == "127.0.0.1"
    assert (p["api"], p["input_tokens"], p["temperature"]) == ("chat.completions.create", PROMPT_TOKENS, 0.5)
    assert p["response_preview"] == STUB_TEXT


def test_model_argument_names_the_deployment(tracked: Any, stub: OpenAIStub, capture: Any) -> None:
    with azure_client(stub) as client:
        completion = client.chat.completions.create(model="eu-gpt4o-mini", messages=MESSAGES)
        client.embeddings.create(model="eu-embed", input=["a", "b"])
    assert stub.requests[0].path.startswith("/openai/deployments/eu-gpt4o-mini/chat/completions?")
    assert stub.requests[1].path.startswith("/openai/deployments/eu-embed/embeddings?")
    chat, embedding = props(capture, 2)
    assert (chat["deployment"], chat["model"]) == ("eu-gpt4o-mini", completion.model)
    assert (embedding["deployment"], embedding["provider"]) == ("eu-embed", "azure_openai")
    assert embedding["input_count"] == 2


def test_deployment_in_the_base_url(tracked: Any, stub: OpenAIStub, capture: Any) -> None:
    with azure_client(stub, base_url=f"{stub.url}/openai/deployments/{DEPLOYMENT}") as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert (p["provider"], p["deployment"]) == ("azure_openai", DEPLOYMENT)


@requires_sdk("Responses API", has_resource("responses"), "1.66")
def test_responses_api_names_the_deployment_in_model(tracked: Any, azure: Any, capture: Any) -> None:
    response = azure.responses.create(model="resp-deployment", input="Say hello.")
    assert response.output_text == STUB_TEXT
    (p,) = props(capture)
    assert (p["provider"], p["deployment"]) == ("azure_openai", "resp-deployment")
    assert p["model"] == response.model


async def test_async_stream_is_left_alone(tracked: Any, stub: OpenAIStub, capture: Any) -> None:
    async with azure_client(stub, is_async=True, azure_deployment=DEPLOYMENT) as client:
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == STUB_TEXT
    assert "stream_options" not in stub.requests[-1].body, "never inject options on Azure"
    (p,) = props(capture)
    assert (p["provider"], p["deployment"], p["stream_completed"]) == ("azure_openai", DEPLOYMENT, True)
    assert p["response_preview"] == STUB_TEXT


def test_stream_opening_with_a_content_filter_chunk(
    tracked: Any, azure: Any, capture: Any, stub: OpenAIStub
) -> None:
    """Azure streams open with a chunk holding only prompt filter results and an empty model.

    Regression: the fold kept the first chunk's model, "", and the event reported the
    requested model instead of the one the response names.
    """
    filters = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []}
    base = {
        "id": "chatcmpl-az",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-2024-11-20",
    }
    pieces = [{"index": 0, "delta": {"content": piece}, "finish_reason": None} for piece in STUB_PIECES]
    last = {"index": 0, "delta": {}, "finish_reason": "stop"}
    blocks = [format_sse(filters)] + [format_sse({**base, "choices": [c]}) for c in [*pieces, last]]
    stub.enqueue(Reply(sse=[*blocks, "data: [DONE]\n\n"]))
    chunks = list(azure.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert len(chunks) == len(STUB_PIECES) + 2
    (p,) = props(capture)
    assert p["model"] == "gpt-4o-2024-11-20"
    assert (p["response_preview"], p["finish_reason"]) == (STUB_TEXT, "stop")


def test_api_key_echoed_in_an_error_is_scrubbed(
    tracked: Any, azure: Any, capture: Any, stub: OpenAIStub
) -> None:
    stub.enqueue(Reply.error(401, f"Access denied: invalid key {AZURE_KEY}.", code="401"))
    with pytest.raises(openai.AuthenticationError):
        azure.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert (p["provider"], p["http_status"], p["deployment"]) == ("azure_openai", 401, DEPLOYMENT)
    assert "invalid key [REDACTED]." in p["error"]


def _token_provider() -> str:
    return ENTRA_TOKEN


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param({"azure_ad_token": ENTRA_TOKEN}, id="token"),
        pytest.param({"azure_ad_token_provider": _token_provider}, id="token-provider"),
    ],
)
def test_entra_id_tokens_never_reach_an_event(
    tracked: Any, stub: OpenAIStub, capture: Any, credential: dict[str, Any]
) -> None:
    """A token provider's tokens are fetched per request and kept nowhere on the client.

    Regression: only the client's own attributes were scrubbed, so a token from
    `azure_ad_token_provider` echoed in an error message reached Amplitude.
    """
    stub.enqueue(Reply.error(401, f"Token {ENTRA_TOKEN} is expired.", code="401"))
    with azure_client(stub, azure_deployment=DEPLOYMENT, **credential) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        list(stream)
    assert stub.requests[0].headers["authorization"] == f"Bearer {ENTRA_TOKEN}"
    error, streamed = props(capture, 2)
    assert "Token [REDACTED] is expired." in error["error"]
    assert streamed["provider"] == "azure_openai" and streamed["stream_completed"] is True


def test_resource_host_is_azure_without_the_azure_client(
    tracked: Any, stub: OpenAIStub, capture: Any
) -> None:
    """Azure's OpenAI-compatible v1 endpoint, reached with the plain `OpenAI` client."""
    host = "contoso-eastus.openai.azure.com"
    with openai.OpenAI(
        api_key=AZURE_KEY,
        base_url=f"http://{host}/openai/v1",
        http_client=proxy_http_client(stub),
        max_retries=0,
    ) as client:
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "stream_options" not in stub.requests[-1].body
    (p,) = props(capture)
    assert (p["provider"], p["server_host"], p["deployment"]) == ("azure_openai", host, "gpt-4o-mini")


def _callable_keys_supported() -> bool:
    import inspect

    annotation = str(inspect.signature(openai.OpenAI).parameters["api_key"].annotation)
    return "Callable" in annotation


@pytest.mark.skipif(not _callable_keys_supported(), reason="this openai takes no callable api_key")
def test_api_key_callable_never_reaches_an_event(tracked: Any, stub: OpenAIStub, capture: Any) -> None:
    key_source: Callable[[], str] = lambda: AZURE_KEY  # noqa: E731
    stub.enqueue(Reply.error(401, f"Invalid key {AZURE_KEY}."))
    with (
        openai.OpenAI(api_key=key_source, base_url=stub.base_url, max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert "Invalid key [REDACTED]." in p["error"]
