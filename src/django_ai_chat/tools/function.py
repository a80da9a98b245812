"""Plain typed Python functions as tools: `@tool`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, cast, get_type_hints, overload

import pydantic
from asgiref.sync import sync_to_async
from griffe import Docstring, DocstringSectionKind, DocstringSectionParameters, GoogleOptions
from pydantic_ai.tools import GenerateToolJsonSchema
from pydantic_core import to_jsonable_python

from django_ai_chat.exceptions import ConfigurationError, ToolError
from django_ai_chat.tools._arguments import check_arguments
from django_ai_chat.tools.tool import Tool, actor_has_perms

P = ParamSpec("P")
R = TypeVar("R")

ACTOR = "actor"
"""A parameter with this name receives the actor and is left out of the schema."""


class FunctionTool(Tool, Generic[P, R]):
    """A typed function as a tool; build it with `@tool`.

    The JSON schema comes from the type hints (through pydantic, so anything pydantic validates
    works: `Literal`, enums, dates, `Annotated[int, Field(ge=1)]`, pydantic models), parameter
    descriptions from the Google-style `Args:` section, the description from the docstring.
    Arguments are validated before the call. Sync functions run in Django's sync thread (so they
    may use the ORM); async functions are awaited. The tool stays callable like the function.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        permission: str | Sequence[str] | None = None,
        approval: bool = False,
    ) -> None:
        """Build the tool from `func`'s signature and docstring.

        Args:
            func: The function, sync or async.
            name: Tool name. Default: the function's name.
            description: For the model. Default: the docstring's text (before `Args:`).
            permission: Django permission(s) the actor needs, e.g. `"shop.view_order"`.
            approval: Whether each call waits for the user's approval (human in the loop).

        Raises:
            ConfigurationError: `*args`/`**kwargs`, or a type pydantic cannot describe.
        """
        doc_text, doc_params = _docstring(func)
        self.func = func
        self.permission_required: tuple[str, ...] = (
            (permission,) if isinstance(permission, str) else tuple(permission or ())
        )
        self.takes_actor = False
        fields: dict[str, Any] = {}
        hints = _type_hints(func)
        for param in inspect.signature(func).parameters.values():
            if param.name == ACTOR:
                self.takes_actor = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"@tool {func.__qualname__}: *args and **kwargs cannot be described to a "
                    "model; name every parameter."
                )
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (
                hints.get(param.name, Any),
                pydantic.Field(default, description=doc_params.get(param.name)),
            )
        tool_name = name or func.__name__
        try:
            self.arguments_model: type[pydantic.BaseModel] = pydantic.create_model(
                f"{tool_name}_arguments",
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                **fields,
            )
            schema = self.arguments_model.model_json_schema(schema_generator=GenerateToolJsonSchema)
        except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as error:
            raise ConfigurationError(f"@tool {func.__qualname__}: {error}") from error
        schema.pop("title", None)
        schema.setdefault("properties", {})
        schema["additionalProperties"] = False
        super().__init__(
            name=tool_name,
            description=description or doc_text or "",
            parameters=schema,
            approval=approval,
        )

    def has_permission(self, actor: Any) -> bool:
        """Whether `actor` holds every permission in `permission_required`."""
        return not self.permission_required or actor_has_perms(actor, self.permission_required)

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        """Validate `arguments` against the type hints, call the function, return JSON data.

        Raises:
            ToolError: Missing permission, unknown or invalid arguments (the message says which).
        """
        if self.permission_required and not await sync_to_async(
            self.has_permission, thread_sensitive=True
        )(actor):
            raise ToolError(
                f"Permission denied: {self.name!r} needs "
                f"{', '.join(map(repr, self.permission_required))}."
            )
        arguments = check_arguments(arguments, self.parameters["properties"])
        try:
            validated = self.arguments_model.model_validate(arguments)
        except pydantic.ValidationError as error:
            raise ToolError(f"Invalid arguments for {self.name!r}:\n{_errors(error)}") from None
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self.takes_actor:
            kwargs[ACTOR] = actor
        func = cast("Callable[..., Any]", self.func)
        if inspect.iscoroutinefunction(func):
            result = await cast("Callable[..., Awaitable[Any]]", func)(**kwargs)
        else:
            result = await sync_to_async(func, thread_sensitive=True)(**kwargs)
        return to_jsonable_python(result, fallback=str)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the undecorated function."""
        return self.func(*args, **kwargs)


@overload
def tool(func: Callable[P, R], /) -> FunctionTool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    permission: str | Sequence[str] | None = None,
    approval: bool = False,
) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...


def tool(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    permission: str | Sequence[str] | None = None,
    approval: bool = False,
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Turn a typed function into a `FunctionTool` (register it with `registry.register`).

    Use bare (`@tool`) or with options (`@tool(name=..., description=..., permission=...,
    approval=True)`; `approval=True`: every call waits for the user's approval).
    A parameter named `actor` receives the user the chat belongs to (`None` in no-user mode).

    Example:
        ```python
        @tool(permission="shop.view_order")
        def order_total(order_id: int, actor: User) -> str:
            \"\"\"Total of one of the user's orders, with its currency.\"\"\"
            return str(Order.objects.filter(customer=actor).get(pk=order_id).total)
        ```
    """

    def decorate(func: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(
            func, name=name, description=description, permission=permission, approval=approval
        )

    return decorate if func is None else decorate(func)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    # The actor's and the return annotation are never needed, so they may name types that only
    # exist under TYPE_CHECKING (a common way to annotate `actor: User`).
    annotations = {
        name: annotation
        for name, annotation in inspect.get_annotations(func).items()
        if name not in (ACTOR, "return")
    }

    def shim() -> None: ...

    shim.__annotations__ = annotations
    try:
        return get_type_hints(
            shim, globalns=getattr(func, "__globals__", None), include_extras=True
        )
    except NameError as error:
        raise ConfigurationError(
            f"@tool {func.__qualname__}: cannot resolve a parameter's type ({error}); import it "
            "at module level, not only under TYPE_CHECKING."
        ) from error


def _docstring(func: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    if not func.__doc__:
        return "", {}
    docstring = Docstring(
        inspect.cleandoc(func.__doc__),
        lineno=1,
        parser="google",
        parser_options=GoogleOptions(warnings=False),
    )
    text = ""
    params: dict[str, str] = {}
    for section in docstring.parse():
        if section.kind is DocstringSectionKind.text and not text:
            text = str(section.value)
        elif isinstance(section, DocstringSectionParameters):
            for param in section.value:
                params.setdefault(param.name.lstrip("*"), param.description)
    return text, params


def _errors(error: pydantic.ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_context=False):
        where = ".".join(map(str, item["loc"])) or "(arguments)"
        lines.append(f"- {where}: {item['msg']}")
    return "\n".join(lines)
