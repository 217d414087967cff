"""Settings: the AMPLITUDE_AI_* parser shared by the environment, the launcher and
`amplitude.ai.configure()`, and configure() itself in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import amplitude.ai
from _amplitude_ai.settings import PROVIDER_SDKS, SettingError, from_env, from_kwargs
from amplitude.ai import _autostart, _instrument
from amplitude.ai._dispatch import dispatcher
from amplitude.ai._providers import BUILTIN
from conftest import props
from loopback import STUB_TEXT, AmplitudeCapture

MESSAGES = [{"role": "user", "content": "Say hello."}]


def test_every_provider_name_starts_on_its_sdks() -> None:
    assert {entry.name for entry in BUILTIN} == set(PROVIDER_SDKS)
    for name, sdks in PROVIDER_SDKS.items():
        assert {entry.sdk for entry in BUILTIN if entry.name == name} == set(sdks)


def test_from_env_reads_and_validates_every_variable() -> None:
    settings, errors = from_env(
        {
            "AMPLITUDE_AI_API_KEY": " sekrit-value ",
            "AMPLITUDE_AI_SERVER_ZONE": "eu",
            "AMPLITUDE_AI_ENABLED": "Yes",
            "AMPLITUDE_AI_PROVIDERS": "OpenAI",
            "AMPLITUDE_AI_FLUSH_INTERVAL_MS": "250",
            "AMPLITUDE_AI_SHUTDOWN_TIMEOUT_MS": "0",
            "UNRELATED": "x",
        }
    )
    assert errors == []
    assert (settings.api_key, settings.server_zone, settings.enabled) == ("sekrit-value", "EU", True)
    assert (settings.providers, settings.flush_interval_ms, settings.shutdown_timeout_ms) == (
        ("openai",),
        250,
        0,
    )
    assert settings.active and settings.server_url is None
    assert "sekrit" not in repr(settings), "the key is never shown"


def test_from_env_reports_each_bad_variable_once_and_hides_the_key() -> None:
    _, errors = from_env(
        {"AMPLITUDE_AI_API_KEY": "  ", "AMPLITUDE_AI_USER_ID": "abc", "AMPLITUDE_AI_DEBUG": "2"}
    )
    assert len(errors) == 3
    assert errors[0] == "AMPLITUDE_AI_API_KEY='***' is not valid (accepted: a non-empty string)"
    assert errors[1].startswith("AMPLITUDE_AI_USER_ID='abc'") and "at least 5" in errors[1]
    assert errors[2].startswith("AMPLITUDE_AI_DEBUG='2'")


def test_disabled_and_selected_providers() -> None:
    settings = from_kwargs(api_key="k", disabled_providers=["openai"])
    assert settings.enabled_providers() == tuple(name for name in PROVIDER_SDKS if name != "openai")
    only = from_kwargs(api_key="k", providers="openai", disabled_providers=["openai"])
    assert only.enabled_providers() == ()
    assert not from_kwargs(api_key="k", enabled=False).active
    assert from_kwargs(dry_run=True).active


def test_from_kwargs_raises_naming_the_setting() -> None:
    with pytest.raises(SettingError, match=r"server_zone='mars' is not valid \(accepted: US or EU\)"):
        from_kwargs(server_zone="mars")
    with pytest.raises(TypeError, match="unknown setting 'zone'"):
        from_kwargs(zone="US")


@pytest.fixture
def restore() -> Iterator[None]:
    timeout, only, disabled = dispatcher.shutdown_timeout, _instrument._only, _instrument._disabled
    yield
    dispatcher.shutdown_timeout, _instrument._only, _instrument._disabled = timeout, only, disabled
    amplitude.ai.untrack()


def test_configure_creates_and_tracks_with_its_own_client(
    restore: None, openai_client: Any, capture: AmplitudeCapture
) -> None:
    client = amplitude.ai.configure(
        api_key="amp-configure-key", server_url=capture.url, flush_interval_ms=50, user_id="configured-user"
    )
    assert client is amplitude.ai.get_active_client() is _autostart._owned[-1]
    assert isinstance(client, amplitude.Amplitude)
    # Built with its first event, in the threading the app then runs with (see test_gevent.py).
    assert client.built is False
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert client.built is True
    assert p["response_preview"] == STUB_TEXT
    assert capture.events[0]["user_id"] == "configured-user"
    assert capture.payloads[0]["api_key"] == "amp-configure-key"
    client.shutdown()


def test_configure_dry_run_prints_events(
    restore: None, openai_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    amplitude.ai.configure(dry_run=True)
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    amplitude.ai.flush()
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["event_properties"]["api"] == "chat.completions.create"


def test_configure_options_only_and_disabling(restore: None, amp: Any) -> None:
    assert amplitude.ai.configure(shutdown_timeout_ms=500) is None
    assert dispatcher.shutdown_timeout == 0.5
    amplitude.ai.track(amp)
    assert amplitude.ai.configure(enabled=False) is None
    assert not amplitude.ai.is_tracking()
    with pytest.raises(ValueError, match="flush_queue_size"):
        amplitude.ai.configure(flush_queue_size=0)
