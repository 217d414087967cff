"""Third-party providers registered under the `amplitude.ai.providers` entry-point group.

A made-up SDK (`toyllm`, speaking the OpenAI wire format to the loopback stub over
urllib) and a separate plugin distribution (`amplitude-toyllm`) that registers its
provider module, laid out on disk as pip installs them (packages plus `.dist-info`
with `entry_points.txt`). Each scenario runs in a fresh interpreter: entry points are
read once per process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from _amplitude_ai import settings
from conftest import AMPLITUDE_KEY
from loopback import COMPLETION_TOKENS, PROMPT_TOKENS, STUB_TEXT, AmplitudeCapture, OpenAIStub
from venvs import clean_env

TOY_KEY = "toy-key-DO-NOT-LEAK-31337"

TOY_SDK = '''
"""A tiny LLM SDK: chat over the OpenAI wire format, plain or streamed."""
import json
import urllib.request

__version__ = "1.2.0"


class Client:
    def __init__(self, base_url, api_key):
        self.base_url = base_url
        self.api_key = api_key

    def _post(self, body):
        request = urllib.request.Request(
            self.base_url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + self.api_key, "Content-Type": "application/json"},
        )
        return urllib.request.urlopen(request, timeout=10)

    def complete(self, *, model, prompt):
        with self._post({"model": model, "messages": [{"role": "user", "content": prompt}]}) as response:
            return json.load(response)

    def stream(self, *, model, prompt):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                "stream_options": {"include_usage": True}}
        with self._post(body) as response:
            for line in response:
                line = line.decode().strip()
                if line.startswith("data: {"):
                    yield json.loads(line[len("data: "):])
'''

PLUGIN_INIT = """
from amplitude.ai.providers import Entry

ENTRY = Entry(name="toyllm", sdk="toyllm", distribution="toyllm",
              module="amplitude_toyllm.provider", handles=">=1", supported=">=1.0,<2")
NOT_AN_ENTRY = object()
BUILTIN_NAME = Entry(name="openai", sdk="toyllm", distribution="toyllm", module="amplitude_toyllm.provider")
"""

PLUGIN_PROVIDER = """
from amplitude.ai.providers import Call, Method, Provider, track_stream


def begin(call: Call, instance, kwargs):
    call.request = {"model": kwargs.get("model")}
    if call.method.name == "stream":
        call.stream = True
        call.acc = {"text": [], "usage": None}
        call.fold = fold


def fold(acc, chunk):
    for choice in chunk.get("choices") or ():
        acc["text"].append((choice.get("delta") or {}).get("content") or "")
    acc["usage"] = chunk.get("usage") or acc["usage"]
    return False


def on_result(call: Call, result):
    if call.stream:
        return track_stream(result, call)
    call.finish(response=result)
    return result


def properties(call: Call):
    if call.error is not None:
        return {"model": call.request["model"]}
    if call.stream:
        text, usage = "".join(call.acc["text"]), call.acc["usage"]
    else:
        text, usage = call.response["choices"][0]["message"]["content"], call.response["usage"]
    return {
        "model": call.request["model"],
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "response_preview": text,
    }


PROVIDER = Provider(
    name="toyllm",
    methods=(
        Method("toyllm", "Client", "complete", "complete", "chat_completion"),
        Method("toyllm", "Client", "stream", "stream", "chat_completion"),
    ),
    begin=begin,
    on_result=on_result,
    properties=properties,
    secrets=lambda call: [call.instance.api_key],
)
"""

APP = """
import sys
{setup}
client = toyllm.Client(sys.argv[1], api_key={key!r})
reply = client.complete(model="toy-1", prompt="hi")
pieces = [c["choices"][0]["delta"].get("content") or "" for c in client.stream(model="toy-1", prompt="hi")
          if c.get("choices")]
print("app:", reply["choices"][0]["message"]["content"], "|", "".join(pieces), flush=True)
"""

TRACK = f"""
import amplitude, amplitude.ai
amp = amplitude.Amplitude({AMPLITUDE_KEY!r}, amplitude.Config(server_url=sys.argv[2], flush_queue_size=1))
amplitude.ai.track(amp)
"""


def _plugin_site(root: Path, entry_points: str) -> Path:
    """A directory laid out like site-packages with toyllm and amplitude-toyllm installed."""
    site = root / "site"
    metadata = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n"
    files = {
        "toyllm/__init__.py": TOY_SDK,
        "toyllm-1.2.0.dist-info/METADATA": metadata.format("toyllm", "1.2.0"),
        "amplitude_toyllm/__init__.py": PLUGIN_INIT,
        "amplitude_toyllm/provider.py": PLUGIN_PROVIDER,
        "amplitude_toyllm-0.1.dist-info/METADATA": metadata.format("amplitude-toyllm", "0.1"),
        "amplitude_toyllm-0.1.dist-info/entry_points.txt": f"[amplitude.ai.providers]\n{entry_points}\n",
    }
    for name, text in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return site


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return _plugin_site(tmp_path, "toyllm = amplitude_toyllm:ENTRY")


def _run(
    python: Path | str, site: Path, stub: OpenAIStub, capture: AmplitudeCapture, app: str, **env: str
) -> subprocess.CompletedProcess[str]:
    script = site.parent / "app.py"
    script.write_text(app, encoding="utf-8")
    full_env = {**clean_env(), "PYTHONPATH": str(site), **env}
    return subprocess.run(
        [str(python), str(script), stub.base_url, capture.url],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _check_events(capture: AmplitudeCapture) -> None:
    events = capture.wait_for(2)
    assert len(events) == 2
    by_api = {e["event_properties"]["api"]: e["event_properties"] for e in events}
    for api, props in by_api.items():
        assert props["provider"] == "toyllm"
        assert props["operation"] == "chat_completion"
        assert props["model"] == "toy-1"
        assert props["input_tokens"] == PROMPT_TOKENS
        assert props["output_tokens"] == COMPLETION_TOKENS
        assert props["response_preview"] == STUB_TEXT
        assert "error_type" not in props, api
    assert by_api["stream"]["stream"] is True
    assert by_api["stream"]["stream_completed"] is True
    assert by_api["stream"]["time_to_first_token_ms"] >= 0
    assert TOY_KEY.encode() not in b"".join(capture.raw_bodies)


@pytest.mark.parametrize("order", ["sdk imported after track()", "sdk imported before track()"])
def test_a_registered_provider_is_loaded_like_a_built_in_one(
    site: Path, stub: OpenAIStub, capture: AmplitudeCapture, order: str
) -> None:
    setup = (TRACK, "import toyllm") if order.endswith("after track()") else ("import toyllm", TRACK)
    app = APP.format(setup="\n".join(setup), key=TOY_KEY)
    result = _run(sys.executable, site, stub, capture, app)
    assert result.returncode == 0, result.stderr
    assert f"app: {STUB_TEXT} | {STUB_TEXT}" in result.stdout
    _check_events(capture)


def test_zero_code_tracks_a_provider_named_in_the_environment(
    wheel_python: Path, site: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    app = APP.format(setup="import toyllm", key=TOY_KEY)
    env = {
        "AMPLITUDE_AI_API_KEY": "amp-zero-code-key",
        "AMPLITUDE_AI_SERVER_URL": capture.url,
        "AMPLITUDE_AI_PROVIDERS": "toyllm,openai",
    }
    result = _run(wheel_python, site, stub, capture, app, **env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    _check_events(capture)


def test_bad_registrations_are_skipped_with_a_warning(
    tmp_path: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    site = _plugin_site(
        tmp_path,
        "\n".join(
            (
                "missing = amplitude_toyllm_missing:ENTRY",
                "wrongtype = amplitude_toyllm:NOT_AN_ENTRY",
                "takeover = amplitude_toyllm:BUILTIN_NAME",
                "toyllm = amplitude_toyllm:ENTRY",
            )
        ),
    )
    app = "import logging; logging.basicConfig()\n" + APP.format(setup=TRACK + "import toyllm", key=TOY_KEY)
    result = _run(sys.executable, site, stub, capture, app)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "skipping provider entry point" in line]
    assert len(warnings) == 3, result.stderr
    assert "amplitude_toyllm_missing:ENTRY" in warnings[0]
    assert "expected an amplitude.ai.providers.Entry" in warnings[1]
    assert "'openai' is a built-in provider" in warnings[2]
    _check_events(capture)


def test_provider_settings_accept_registered_names_only(site: Path, monkeypatch: Any) -> None:
    with pytest.raises(settings.SettingError, match="unknown toyllm; accepted: openai, "):
        settings.PARSERS["PROVIDERS"]("openai,toyllm")
    monkeypatch.syspath_prepend(str(site))
    assert settings.PARSERS["PROVIDERS"]("openai, ToyLLM") == ("openai", "toyllm")
    with pytest.raises(settings.SettingError, match=r"unknown nope; accepted: .*, toyllm$"):
        settings.PARSERS["DISABLED_PROVIDERS"]("toyllm,nope")
