"""Model strings (`"openai:gpt-4o"`) to pydantic-ai models.

Provider SDKs are imported only when a model of theirs is resolved: importing all three costs
seconds, and a project usually installs one. Two registries let other parts plug models in
without this module importing them: `register_model(name, model)` names a model for
`"test:<name>"` (the test kit re-exports it), and `register_provider(prefix, factory)` adds a
prefix (the offline demo model registers `"demo"` from `django_ai_chat.dev.demo_model`, imported
by the app config).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from django_ai_chat.conf import ai_chat_settings
from django_ai_chat.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pydantic_ai.models import Model

__all__ = [
    "DEFAULT_MODELS",
    "KNOWN_PREFIXES",
    "provider_env_var",
    "register_model",
    "register_provider",
    "registered_model",
    "resolve_model",
    "unregister_model",
]

DEFAULT_MODELS: dict[str, str] = {
    "openai": "openai:gpt-4o",
    # The seed's claude-sonnet-4-5 reaches end of life on 2026-11-30 (the anthropic SDK warns on
    # every request). claude-sonnet-4-6 is its direct successor in pydantic-ai's KnownModelName:
    # same tier and price; the 5.5 generation changes how thinking interleaves with tool calls.
    "anthropic": "anthropic:claude-sonnet-4-6",
    # gemini-1.5-pro is retired. gemini-4-argon is the Pro-tier successor in KnownModelName
    # (frontier model, Pro pricing); gemini-3.1-pro-preview is only a preview.
    "gemini": "google:gemini-4-argon",
    "ollama": "ollama:llama3.2",
}
"""Default model string per `--provider` of the generator."""

_API_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GOOGLE_API_KEY",
}

_EXTRA = {
    "openai": "openai",
    "ollama": "openai",
    "openai-compatible": "openai",
    "anthropic": "anthropic",
    "google": "google",
}

_ALIASES = {"gemini": "google"}

KNOWN_PREFIXES = (
    "openai",
    "anthropic",
    "google",
    "gemini",
    "ollama",
    "openai-compatible",
    "test",
    "demo",
)
"""Every prefix `resolve_model` understands."""


def _split(model: str) -> tuple[str, str]:
    prefix, sep, name = model.partition(":")
    prefix = _ALIASES.get(prefix.strip().lower(), prefix.strip().lower())
    if not sep and prefix != "demo":
        raise ConfigurationError(
            f"Model {model!r} has no provider prefix. Write it as '<provider>:<model>', "
            f"e.g. 'openai:gpt-4o'; known providers: {', '.join(KNOWN_PREFIXES)}."
        )
    return prefix, name.strip()


def provider_env_var(model: str) -> str | None:
    """The environment variable holding the API key a model string needs.

    Args:
        model: A model string such as `"anthropic:claude-sonnet-4-6"`.

    Returns:
        `"OPENAI_API_KEY"`, `"ANTHROPIC_API_KEY"` or `"GOOGLE_API_KEY"`; `None` for providers that
        need no key (`ollama:`, `openai-compatible:`, `test:`, `demo:`) or an unknown prefix.
    """
    prefix, _ = _split(model) if ":" in model else (model.strip().lower(), "")
    return _API_KEY_ENV.get(_ALIASES.get(prefix, prefix))


def _secret(name: str) -> str:
    """A non-empty Django setting named `name`, else the environment variable `name`, else `""`.

    The generator writes `OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")` into settings,
    so a project may set the key either way.
    """
    from django.conf import settings

    value = getattr(settings, name, "") if settings.configured else ""
    return str(value or os.environ.get(name, ""))


def _api_key(prefix: str) -> str:
    env_var = _API_KEY_ENV[prefix]
    key = _secret(env_var)
    if prefix == "google" and not key:
        # pydantic-ai's Google provider also accepts the Gemini API's own variable name.
        key = _secret("GEMINI_API_KEY")
    if not key:
        raise ConfigurationError(
            f"The {prefix!r} model needs an API key: set the environment variable {env_var!r} "
            f"(or the Django setting {env_var!r}); use the model 'demo:' to try the chat offline."
        )
    return key


def _missing_extra(prefix: str, error: ImportError) -> ConfigurationError:
    extra = _EXTRA[prefix]
    return ConfigurationError(
        f"The {prefix!r} provider needs its SDK ({error.name or error}): "
        f'pip install "django-ai-chat[{extra}]"'
    )


_MODELS: dict[tuple[str | None, ...], Model] = {}
_MODELS_MAX = 64


def _cached(key: tuple[str | None, ...], build: Callable[[], Model]) -> Model:
    # A provider builds its own HTTP client: an SSL context (~20-50 ms of CPU loading the CA
    # bundle) and a new connection per answer. Sharing the model per (provider, model, URL, key)
    # keeps one pooled client; pydantic-ai replaces it if it is closed or its event loop ended.
    model = _MODELS.get(key)
    if model is None:
        if len(_MODELS) >= _MODELS_MAX:
            _MODELS.clear()
        model = _MODELS[key] = build()
    return model


def _openai_chat(name: str, *, base_url: str | None, api_key: str | None) -> Model:
    def build() -> Model:
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        return OpenAIChatModel(name, provider=OpenAIProvider(base_url=base_url, api_key=api_key))

    return _cached(("openai", name, base_url, api_key), build)


def _openai(name: str) -> Model:
    base_url = ai_chat_settings.OPENAI_BASE_URL or os.environ.get("OPENAI_BASE_URL") or None
    # A self-hosted OpenAI-compatible server often needs no key; api.openai.com always does.
    api_key = _secret("OPENAI_API_KEY") if base_url else _api_key("openai")
    return _openai_chat(name, base_url=base_url, api_key=api_key or "not-needed")


def _openai_compatible(name: str) -> Model:
    base_url = ai_chat_settings.OPENAI_BASE_URL or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise ConfigurationError(
            f"'openai-compatible:{name}' needs the server's base URL: set the setting "
            "'AI_CHAT_OPENAI_BASE_URL' or the environment variable 'OPENAI_BASE_URL' "
            "(e.g. 'http://localhost:8000/v1')."
        )
    return _openai_chat(name, base_url=base_url, api_key=_secret("OPENAI_API_KEY") or "not-needed")


def _ollama(name: str) -> Model:
    return _openai_chat(name, base_url=ai_chat_settings.OLLAMA_BASE_URL, api_key="ollama")


def _anthropic(name: str) -> Model:
    api_key = _api_key("anthropic")

    def build() -> Model:
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        return AnthropicModel(name, provider=AnthropicProvider(api_key=api_key))

    return _cached(("anthropic", name, api_key), build)


def _google(name: str) -> Model:
    api_key = _api_key("google")

    def build() -> Model:
        from pydantic_ai.models.google import GoogleModel
        from pydantic_ai.providers.google import GoogleProvider

        return GoogleModel(name, provider=GoogleProvider(api_key=api_key))

    return _cached(("google", name, api_key), build)


_named_models: dict[str, Model] = {}
_M = TypeVar("_M", bound="Model")


def register_model(name: str, model: _M) -> _M:
    """Make `model` available as the model string `"test:<name>"`; returns `model`."""
    _named_models[name] = model
    return model


def unregister_model(name: str) -> None:
    """Forget the model registered as `name` (no error if there is none)."""
    _named_models.pop(name, None)


def registered_model(name: str) -> Model:
    """The model registered as `name`.

    Raises:
        ConfigurationError: nothing is registered under `name`.
    """
    try:
        return _named_models[name]
    except KeyError:
        known = ", ".join(repr(n) for n in sorted(_named_models)) or "none"
        raise ConfigurationError(
            f"No test model is registered as {name!r} (registered: {known}). Call "
            f"django_ai_chat.testing.register_model({name!r}, ScriptedLLM([...])) first, or use "
            "the 'scripted_llm' fixture of django_ai_chat.pytest_plugin."
        ) from None


_FACTORIES: dict[str, Callable[[str], Model]] = {
    "openai": _openai,
    "openai-compatible": _openai_compatible,
    "ollama": _ollama,
    "anthropic": _anthropic,
    "google": _google,
    "test": registered_model,
}


def register_provider(prefix: str, factory: Callable[[str], Model]) -> None:
    """Make `"<prefix>:<name>"` model strings resolve to `factory(name)`.

    A later registration of the same prefix replaces the earlier one. The factory may raise
    `ImportError` for a missing SDK (reported as a `ConfigurationError` naming the extra when the
    prefix has one) or `ConfigurationError`.
    """
    _FACTORIES[prefix.strip().lower()] = factory


def resolve_model(model: str | Model) -> Model:
    """Turn a model string into a pydantic-ai model; a `Model` instance is returned as is.

    Args:
        model: `"openai:<m>"` (Chat Completions; base URL from `AI_CHAT_OPENAI_BASE_URL` or
            `OPENAI_BASE_URL`), `"anthropic:<m>"`, `"google:<m>"` (alias `"gemini:<m>"`),
            `"ollama:<m>"` (at `AI_CHAT_OLLAMA_BASE_URL`), `"openai-compatible:<m>"` (needs a base
            URL), `"test:<name>"` (see `testing.register_model`), `"demo:"` (offline demo model),
            or a `pydantic_ai.models.Model`.

    Returns:
        The model, ready for a pydantic-ai `Agent`.

    Raises:
        ConfigurationError: unknown prefix, missing API key (names the environment variable),
            missing provider SDK (names the pip extra), or a missing base URL.
    """
    if not isinstance(model, str):
        return model
    prefix, name = _split(model)
    factory = _FACTORIES.get(prefix)
    if factory is None and prefix == "demo":
        raise ConfigurationError(
            f"The demo model {model!r} is registered by the 'django_ai_chat' app: add it to "
            "INSTALLED_APPS, or import django_ai_chat.dev.demo_model first."
        )
    if factory is None:
        known = dict.fromkeys((*KNOWN_PREFIXES, *_FACTORIES))
        raise ConfigurationError(
            f"Unknown model provider {prefix!r} in {model!r}; known providers: {', '.join(known)}."
        )
    if prefix not in ("test", "demo") and not name:
        example = DEFAULT_MODELS.get("gemini" if prefix == "google" else prefix, "openai:gpt-4o")
        raise ConfigurationError(f"Model {model!r} names no model; write e.g. {example!r}.")
    try:
        return factory(name)
    except ImportError as error:
        raise _missing_extra(prefix, error) from error
