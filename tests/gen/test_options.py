from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from django.test import override_settings

import tests
from django_ai_chat.gen.errors import GeneratorError
from django_ai_chat.gen.options import ChatOptions, add_arguments
from django_ai_chat.llm import DEFAULT_MODELS


def options(*argv: str, root: Path = Path("/nonexistent")) -> ChatOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return ChatOptions.from_namespace(parser.parse_args(argv), root=root)


def test_defaults_follow_the_seed() -> None:
    opts = options()
    assert (opts.app_label, opts.route, opts.provider) == ("chat", "chat", "openai")
    assert opts.user_model == "auth.User"
    assert not (opts.live or opts.live_component or opts.yes or opts.dry_run or opts.check)
    assert opts.context() == {
        "app_label": "chat",
        "camel": "Chat",
        "route": "chat",
        "provider": "openai",
        "model": DEFAULT_MODELS["openai"],
        "api_key_env": "OPENAI_API_KEY",
        "user_model": "auth.User",
        "live": False,
        "live_component": False,
        "admin": False,
        "api": "",
        "version": "0.1.0",
    }


def test_every_option_reaches_the_context() -> None:
    opts = options(
        "--domain=support_chat",
        "--route=/support/chat/",
        "--provider=anthropic",
        "--extend=admin",
        "--live",
        "--live-component",
        "--api=AI-SDK",
    )
    context = opts.context()
    assert (context["app_label"], context["camel"], context["route"]) == (
        "support_chat",
        "SupportChat",
        "support/chat",
    )
    assert (context["model"], context["api_key_env"]) == (
        DEFAULT_MODELS["anthropic"],
        "ANTHROPIC_API_KEY",
    )
    assert context["admin"] and context["live"] and context["live_component"]
    assert context["api"] == "ai-sdk"


def test_unknown_api_lists_the_known_ones() -> None:
    with pytest.raises(GeneratorError, match=r"Unknown --api 'graphql'; choose one of: ai-sdk\."):
        options("--api", "graphql")


@pytest.mark.parametrize(
    ("provider", "env", "extra"),
    [
        ("gemini", "GOOGLE_API_KEY", "google"),
        ("ollama", None, "openai"),
        ("OpenAI", "OPENAI_API_KEY", "openai"),
    ],
)
def test_providers(provider: str, env: str | None, extra: str) -> None:
    opts = options("--provider", provider)
    assert (opts.api_key_env, opts.extra) == (env, extra)
    assert opts.model == DEFAULT_MODELS[provider.lower()]


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(
        GeneratorError,
        match=r"Unknown --provider 'mistral'; choose one of: openai, anthropic, gemini, ollama\.",
    ):
        options("--provider", "mistral")


def test_unknown_extension_lists_the_known_ones() -> None:
    with pytest.raises(
        GeneratorError, match=r"Unknown --extend 'graphql'; known extensions: admin\."
    ):
        options("--extend", "admin,graphql")


@pytest.mark.parametrize("domain", ["Chat", "support-chat", "1chat", "class", ""])
def test_domain_must_be_an_app_label(domain: str) -> None:
    with pytest.raises(GeneratorError, match="is not a valid app label"):
        options("--domain", domain)


def test_domain_must_not_clash_with_an_installed_app() -> None:
    with pytest.raises(GeneratorError, match=r"clashes with the installed app 'tests\.testapp'"):
        options("--domain", "testapp")


def test_domain_must_not_shadow_a_module() -> None:
    with pytest.raises(GeneratorError, match="would shadow the existing Python module 'json'"):
        options("--domain", "json")


def test_domain_may_be_the_app_generated_before() -> None:
    # Re-running: the installed app with that label is the one in the project directory.
    root = Path(tests.__file__).parent
    assert options("--domain", "testapp", root=root).app_label == "testapp"


@pytest.mark.parametrize(
    ("route", "expected"), [("/chat", "chat"), ("support/chat/", "support/chat"), ("/", "")]
)
def test_route_is_kept_without_slashes(route: str, expected: str) -> None:
    assert options("--route", route).route == expected


def test_route_must_be_a_plain_path() -> None:
    with pytest.raises(GeneratorError, match=r"--route '/chat/<id>' is not a plain URL path"):
        options("--route", "/chat/<id>")


def test_user_model_must_exist() -> None:
    with pytest.raises(GeneratorError, match=r"--user 'accounts.User' is not an installed model"):
        options("--user", "accounts.User")
    with pytest.raises(GeneratorError, match="is not an installed model"):
        options("--user", "User")


def test_user_model_label_is_normalised() -> None:
    assert options("--user", "auth.user").user_model == "auth.User"


def test_no_auth_means_no_user_mode() -> None:
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes", "django_ai_chat"]):
        assert options().user_model is None
