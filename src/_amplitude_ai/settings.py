"""Tracking settings from `AMPLITUDE_AI_*` environment variables or keyword arguments.

Standard library only: this runs at interpreter start-up (from the `.pth` bootstrap),
where importing `amplitude` itself would cost tens of milliseconds in every process.
"""

from __future__ import annotations

# `typing` and `collections.abc` are not loaded at start-up yet: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Callable

PREFIX = "AMPLITUDE_AI_"

# Provider name (for AMPLITUDE_AI_PROVIDERS) -> the SDK top-level modules whose import
# starts tracking. amplitude.ai._providers declares the same SDKs with their provider
# modules; a test keeps the two in step.
PROVIDER_SDKS: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "gemini": ("google.genai",),
    "cohere": ("cohere",),
    "mistral": ("mistralai",),
}

# Where third-party packages register providers (amplitude.ai.providers); an entry
# point's name is its provider's name.
ENTRY_POINT_GROUP = "amplitude.ai.providers"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_ZONES = ("US", "EU")
MIN_ID_LENGTH = 5
"""Amplitude rejects events whose user_id and device_id are both shorter than this."""


class SettingError(ValueError):
    """A setting's value is not acceptable; the message names it and what is accepted."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError("accepted: true or false (also 1/0, yes/no, on/off)")


def _zone(value: str) -> str:
    zone = value.strip().upper()
    if zone not in _ZONES:
        raise SettingError(f"accepted: {' or '.join(_ZONES)}")
    return zone


def _url(value: str) -> str:
    url = value.strip()
    if not url.startswith(("http://", "https://")):
        raise SettingError("accepted: an http:// or https:// URL")
    return url


def _identifier(value: str) -> str:
    if len(value.strip()) < MIN_ID_LENGTH:
        raise SettingError(f"accepted: a string of at least {MIN_ID_LENGTH} characters")
    return value


def _text(value: str) -> str:
    if not value.strip():
        raise SettingError("accepted: a non-empty string")
    return value.strip()


def _providers(value: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in PROVIDER_SDKS]
    # Only a name that is not built in costs the scan of installed distributions.
    if unknown and not set(unknown) <= set(registered_names()):
        accepted = (*PROVIDER_SDKS, *registered_names())
        unknown = [name for name in unknown if name not in accepted]
        raise SettingError(f"unknown {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    return names


def provider_entry_points() -> list[Any]:
    """The entry points of ENTRY_POINT_GROUP; reads every installed distribution's metadata."""
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except TypeError:  # Python 3.9: no selection by group
        return list(entry_points().get(ENTRY_POINT_GROUP, ()))


def registered_names() -> tuple[str, ...]:
    """Names of the providers that installed packages register (entry point names)."""
    try:
        return tuple(sorted({point.name.lower() for point in provider_entry_points()}))
    except Exception:
        return ()


def _count(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise SettingError(f"accepted: a whole number >= {minimum}")
        return number

    return parse


# name -> parser of its text form. Each is AMPLITUDE_AI_<NAME> in the environment and
# the lower-case keyword of amplitude.ai.configure().
PARSERS: dict[str, Callable[[str], Any]] = {
    "API_KEY": _text,
    "SERVER_URL": _url,
    "SERVER_ZONE": _zone,
    "USER_ID": _identifier,
    "DEVICE_ID": _identifier,
    "ENABLED": _bool,
    "PROVIDERS": _providers,
    "DISABLED_PROVIDERS": _providers,
    "DRY_RUN": _bool,
    "DEBUG": _bool,
    "FLUSH_INTERVAL_MS": _count(1),
    "FLUSH_QUEUE_SIZE": _count(1),
    "SHUTDOWN_TIMEOUT_MS": _count(0),
}


class Settings:
    """Validated settings; unset ones are None (the library's defaults then apply)."""

    __slots__ = tuple(name.lower() for name in PARSERS)

    api_key: str | None
    server_url: str | None
    server_zone: str | None
    user_id: str | None
    device_id: str | None
    enabled: bool | None
    providers: tuple[str, ...] | None
    disabled_providers: tuple[str, ...] | None
    dry_run: bool | None
    debug: bool | None
    flush_interval_ms: int | None
    flush_queue_size: int | None
    shutdown_timeout_ms: int | None

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    def __repr__(self) -> str:
        shown = {n: ("***" if n == "api_key" else getattr(self, n)) for n in self.__slots__}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items() if v is not None)})"

    @property
    def active(self) -> bool:
        """Whether these settings turn tracking on by themselves (a key, or a dry run)."""
        return self.enabled is not False and bool(self.api_key or self.dry_run)

    def enabled_providers(self) -> tuple[str, ...]:
        """The providers to track: the chosen ones, else the built-in ones, minus disabled."""
        chosen = self.providers or tuple(PROVIDER_SDKS)
        return tuple(name for name in chosen if name not in (self.disabled_providers or ()))


def from_env(environ: Mapping[str, str]) -> tuple[Settings, list[str]]:
    """Settings from `environ`, and one message per bad variable (for stderr)."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, parse in PARSERS.items():
        raw = environ.get(PREFIX + name)
        if raw is None:
            continue
        try:
            values[name.lower()] = parse(raw)
        except SettingError as exc:
            shown = "***" if name == "API_KEY" else raw
            errors.append(f"{PREFIX}{name}={shown!r} is not valid ({exc})")
    return Settings(**values), errors


def from_kwargs(**kwargs: Any) -> Settings:
    """Settings from keyword arguments (native values or their text forms); raises
    `SettingError` naming the first bad one."""
    values: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = key.upper()
        parse = PARSERS.get(name)
        if parse is None:
            raise TypeError(f"unknown setting {key!r}; known: {', '.join(n.lower() for n in PARSERS)}")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        try:
            values[key] = parse(text)
        except SettingError as exc:
            raise SettingError(f"{key}={value!r} is not valid ({exc})") from None
    return Settings(**values)
