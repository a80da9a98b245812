from __future__ import annotations

import subprocess
import sys
from typing import Any, get_args

import pytest
from pydantic_ai.models import KnownModelName
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.models.openai import OpenAIChatModel

from django_ai_chat.exceptions import ConfigurationError
from django_ai_chat.llm import (
    _FACTORIES,
    DEFAULT_MODELS,
    provider_env_var,
    register_provider,
    resolve_model,
)
from django_ai_chat.testing import DemoModel, ScriptedLLM, register_model, unregister_model

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    for name in (*KEY_VARS, "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
        if hasattr(settings, name):
            delattr(settings, name)


def test_openai_uses_chat_completions_with_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")

    model = resolve_model("openai:gpt-4o")

    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "gpt-4o"
    assert model.client.api_key == "sk-env"
    assert model.base_url.startswith("https://api.openai.com")


def test_a_key_in_django_settings_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    settings.ANTHROPIC_API_KEY = "from-settings"

    model = resolve_model("anthropic:claude-sonnet-4-6")

    assert isinstance(model, AnthropicModel)
    assert getattr(model.client, "api_key", None) == "from-settings"


def test_an_empty_setting_falls_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    settings.OPENAI_API_KEY = ""

    model = resolve_model("openai:gpt-4o")

    assert isinstance(model, OpenAIChatModel)
    assert model.client.api_key == "sk-env"


@pytest.mark.parametrize(
    ("model", "env_var"),
    [
        ("openai:gpt-4o", "OPENAI_API_KEY"),
        ("anthropic:claude-sonnet-4-6", "ANTHROPIC_API_KEY"),
        ("google:gemini-4-argon", "GOOGLE_API_KEY"),
        ("gemini:gemini-4-argon", "GOOGLE_API_KEY"),
    ],
)
def test_a_missing_key_names_the_environment_variable(model: str, env_var: str) -> None:
    with pytest.raises(ConfigurationError, match=repr(env_var)):
        resolve_model(model)

    assert provider_env_var(model) == env_var


def test_google_and_its_gemini_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")

    model = resolve_model("gemini:gemini-4-argon")

    assert isinstance(model, GoogleModel)
    assert model.model_name == "gemini-4-argon"
    assert type(resolve_model("google:gemini-4-argon")) is GoogleModel


def test_openai_base_url_comes_from_the_setting_and_needs_no_key(settings: Any) -> None:
    settings.AI_CHAT_OPENAI_BASE_URL = "http://127.0.0.1:9999/v1"

    model = resolve_model("openai:local-model")

    assert isinstance(model, OpenAIChatModel)
    assert model.base_url.rstrip("/") == "http://127.0.0.1:9999/v1"


def test_a_resolved_model_is_reused_until_its_url_or_key_changes(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # One model (and HTTP client) per configuration, not one per answer: building a provider's
    # client costs an SSL context and a new connection.
    settings.AI_CHAT_OPENAI_BASE_URL = "http://127.0.0.1:9997/v1"
    first = resolve_model("openai:local-model")

    assert resolve_model("openai:local-model") is first
    assert resolve_model("openai:other-model") is not first
    settings.AI_CHAT_OPENAI_BASE_URL = "http://127.0.0.1:9996/v1"
    moved = resolve_model("openai:local-model")
    assert moved is not first
    assert moved.base_url.rstrip("/") == "http://127.0.0.1:9996/v1"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "key-1")
    anthropic = resolve_model("anthropic:claude-sonnet-4-6")
    assert resolve_model("anthropic:claude-sonnet-4-6") is anthropic
    monkeypatch.setenv("ANTHROPIC_API_KEY", "key-2")
    assert resolve_model("anthropic:claude-sonnet-4-6") is not anthropic


def test_openai_base_url_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9998/v1")

    model = resolve_model("openai:local-model")

    assert isinstance(model, OpenAIChatModel)
    assert model.base_url.rstrip("/") == "http://127.0.0.1:9998/v1"


def test_ollama_is_openai_compatible_at_its_base_url(settings: Any) -> None:
    settings.AI_CHAT_OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"

    model = resolve_model("ollama:llama3.2")

    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "llama3.2"
    assert model.base_url.rstrip("/") == "http://127.0.0.1:11434/v1"
    assert provider_env_var("ollama:llama3.2") is None


def test_openai_compatible_needs_a_base_url(settings: Any) -> None:
    with pytest.raises(ConfigurationError, match="AI_CHAT_OPENAI_BASE_URL"):
        resolve_model("openai-compatible:qwen")

    settings.AI_CHAT_OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"
    model = resolve_model("openai-compatible:qwen")
    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "qwen"


def test_test_models_come_from_the_registry() -> None:
    scripted = register_model("llm-test", ScriptedLLM())
    try:
        assert resolve_model("test:llm-test") is scripted
    finally:
        unregister_model("llm-test")

    with pytest.raises(ConfigurationError, match=r"'llm-test'.*register_model"):
        resolve_model("test:llm-test")


def test_demo_needs_nothing() -> None:
    assert isinstance(resolve_model("demo:"), DemoModel)
    assert isinstance(resolve_model("demo"), DemoModel)
    assert isinstance(resolve_model("demo:instant"), DemoModel)
    assert provider_env_var("demo:") is None


def test_a_model_instance_is_returned_as_is() -> None:
    model = ScriptedLLM()
    assert resolve_model(model) is model


def test_an_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as error:
        resolve_model("mistral:large")

    assert "'mistral'" in str(error.value)
    for prefix in ("openai", "anthropic", "google", "ollama", "openai-compatible", "demo"):
        assert prefix in str(error.value)


@pytest.mark.parametrize("model", ["gpt-4o", "openai:", "anthropic:  "])
def test_a_model_string_needs_a_provider_and_a_name(model: str) -> None:
    with pytest.raises(ConfigurationError, match=r"openai:gpt-4o|claude"):
        resolve_model(model)


@pytest.mark.parametrize(
    ("model", "sdk", "extra"),
    [
        ("anthropic:claude-sonnet-4-6", "anthropic", "anthropic"),
        ("openai:gpt-4o", "openai", "openai"),
        ("ollama:llama3.2", "openai", "openai"),
        ("google:gemini-4-argon", "google.genai", "google"),
    ],
)
def test_a_missing_sdk_names_the_pip_extra(
    monkeypatch: pytest.MonkeyPatch, model: str, sdk: str, extra: str
) -> None:
    for name in KEY_VARS:
        monkeypatch.setenv(name, "key")
    for name in list(sys.modules):
        if name == sdk or name.startswith(
            (f"{sdk}.", f"pydantic_ai.models.{extra}", f"pydantic_ai.providers.{extra}")
        ):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, sdk, None)  # makes `import <sdk>` fail

    with pytest.raises(ConfigurationError, match=rf'pip install "django-ai-chat\[{extra}\]"'):
        resolve_model(model)


def test_importing_the_runtime_imports_no_provider_sdk() -> None:
    code = (
        "import sys, django_ai_chat.llm, django_ai_chat.loop, django_ai_chat.testing; "
        "print(sorted(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_default_models_are_known_to_pydantic_ai_and_not_retired() -> None:
    known = set(get_args(KnownModelName.__value__))

    assert DEFAULT_MODELS["openai"] == "openai:gpt-4o"
    assert DEFAULT_MODELS["ollama"] == "ollama:llama3.2"
    assert DEFAULT_MODELS["anthropic"] in known
    assert DEFAULT_MODELS["gemini"] in known
    assert DEFAULT_MODELS["anthropic"] != "anthropic:claude-sonnet-4-5"
    assert "1.5" not in DEFAULT_MODELS["gemini"]


def test_the_runtime_imports_no_test_kit() -> None:
    # The test kit registers its models into `llm`; the runtime must never need it loaded.
    code = (
        "import sys, django_ai_chat.llm, django_ai_chat.loop, django_ai_chat.dev.demo_model; "
        "print(sorted(m for m in sys.modules if m.startswith('django_ai_chat.testing')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_register_provider_adds_a_prefix() -> None:
    model = ScriptedLLM()
    register_provider("acme", lambda name: model)
    try:
        assert resolve_model("acme:anything") is model
    finally:
        _FACTORIES.pop("acme")

    with pytest.raises(ConfigurationError, match="'acme'"):
        resolve_model("acme:anything")
