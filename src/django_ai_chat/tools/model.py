"""Model-action tools: read, get, create, update and destroy rows of a Django model as the actor.

Longer than our usual modules: `ModelTools` (the public builder, one method per action) and
the five tool classes it returns share the model's introspection (fields, schemas, scope);
the schema, query and value helpers are in their own private modules.
"""

from __future__ import annotations

import abc
import enum
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

from asgiref.sync import sync_to_async
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, ValidationError
from django.db import models, transaction

from django_ai_chat.exceptions import ConfigurationError, ToolError
from django_ai_chat.tools._arguments import check_arguments
from django_ai_chat.tools._query import RESULT_TYPES, filter_q, ordering, read_schema
from django_ai_chat.tools._schema import field_schema, object_schema
from django_ai_chat.tools._values import to_json, to_python, validation_message
from django_ai_chat.tools.tool import Tool, actor_has_perms, describe_arguments

M = TypeVar("M", bound=models.Model)

Scope = Callable[[models.QuerySet[Any], Any], models.QuerySet[Any]]
"""`(queryset, actor) -> queryset`: narrows every query of a tool to the rows `actor` may see."""

OnCreate = Callable[[Any, Any], None]
"""`(instance, actor) -> None`: called on every new instance before validation and saving."""


class _Default(enum.Enum):
    DEFAULT = enum.auto()


_DEFAULT = _Default.DEFAULT


class ModelTools(Generic[M]):
    """Tools over one Django model (the AshAi `tool :read_posts, Post, :read` DSL).

    Every tool checks the Django model permission of its action (`view` — or `change`, as in the
    admin — for read and get; `add`, `change`, `delete` for create, update, destroy), and every
    query starts from `queryset(actor)`, the row scope, so a tool never sees or touches a row the
    actor cannot. Creates and updates are validated with `full_clean()` and must leave the row
    inside the scope, otherwise nothing is saved; a foreign key they set must name a row the
    actor can see when the related model's queryset has `for_actor(actor)`.

    Example:
        ```python
        notes = ModelTools(Note, fields=["title", "body", "done"], owner="owner")
        registry.register(notes.read(), notes.get(), notes.create(), notes.update())
        ```

    `actor=None` means no-user mode (the project has no users): permissions are not checked,
    and the scope receives `None` (`owner="owner"` then means rows without an owner).
    """

    def __init__(
        self,
        model: type[M],
        *,
        fields: Sequence[str] | Literal["__all__"],
        writable: Sequence[str] | None = None,
        owner: str | None = None,
        scope: Scope | str | _Default | None = _DEFAULT,
        on_create: OnCreate | None = None,
        check_permissions: bool = True,
    ) -> None:
        """Describe what the model may see and change.

        Args:
            model: The Django model.
            fields: Fields shown in results and usable in filters and sorts, or `"__all__"`.
                The primary key is always included.
            writable: Fields create and update accept. Default: the editable fields among
                `fields`, except the primary key and `owner`.
            owner: Name of a foreign key to the user. Shorthand for
                `scope=lambda qs, actor: qs.filter(<owner>=actor)` and for setting it to the
                actor on create; it is never writable.
            scope: The row scope: a callable `(queryset, actor) -> queryset`, the name of a
                queryset method called with the actor, or `None` for every row (explicitly
                unscoped). Default: `owner` if given, else the queryset's `for_actor(actor)`
                method; without either it is an error, so no model is exposed unscoped by
                accident.
            on_create: `(instance, actor) -> None`, called on new instances before validation,
                after `owner` is set (e.g. to set a tenant).
            check_permissions: Check Django model permissions. Set `False` when the row scope
                alone decides (most projects give users no model permissions).

        Raises:
            ConfigurationError: Unknown or unsupported fields, or no row scope.
        """
        self.model = model
        self.opts = model._meta
        self.check_permissions = check_permissions
        self.on_create = on_create
        pk = self.opts.pk
        assert pk is not None  # every concrete model has one
        self.pk: models.Field[Any, Any] = pk
        self.owner = self._concrete_field(owner) if owner else None
        if self.owner is not None and not isinstance(self.owner, models.ForeignKey):
            raise ConfigurationError(
                f"owner={owner!r}: {model.__name__}.{owner} must be a ForeignKey to the user model."
            )
        if isinstance(fields, str) and fields != "__all__":
            raise ConfigurationError(f"fields={fields!r}: pass a list of names, or '__all__'.")
        names = [f.name for f in self.opts.concrete_fields] if fields == "__all__" else list(fields)
        exposed = [self.pk] + [self._concrete_field(n) for n in names if n != self.pk.name]
        self.fields: dict[str, models.Field[Any, Any]] = {f.name: f for f in exposed}
        if writable is None:
            writable_fields = [
                f
                for f in exposed
                if f.editable and not f.primary_key and f is not self.owner and not f.auto_created
            ]
        else:
            writable_fields = [self._concrete_field(name) for name in writable]
            for field in writable_fields:
                if field.primary_key or field is self.owner or not field.editable:
                    raise ConfigurationError(
                        f"{model.__name__}.{field.name} cannot be writable (primary key, owner "
                        "or editable=False): leave it out of writable=[...]."
                    )
        self.writable: dict[str, models.Field[Any, Any]] = {f.name: f for f in writable_fields}
        self._scope = self._resolve_scope(scope)
        # Fail at start-up, not on the first call, for fields with no JSON form.
        self._schemas = {
            name: field_schema(f) for name, f in {**self.fields, **self.writable}.items()
        }

    # The tools ---------------------------------------------------------------------------------

    def read(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        default_limit: int = 25,
        max_limit: int = 100,
        approval: bool = False,
    ) -> ModelTool:
        """A tool that lists, counts or checks for rows: filter, sort, limit, offset.

        Args:
            name: Tool name. Default: `read_<verbose name plural>` (`read_notes`).
            description: For the model. Default: a generic one naming the model.
            default_limit: Rows returned when the model gives no `limit`.
            max_limit: Largest `limit` honoured; larger ones are capped.
            approval: Whether each call waits for the user's approval (reads: no by default).
        """
        if not 1 <= default_limit <= max_limit:
            raise ConfigurationError("read() needs 1 <= default_limit <= max_limit.")
        return _ReadTool(
            self,
            name=name or f"read_{_identifier(self.opts.verbose_name_plural)}",
            description=description
            or f"List the {self.opts.verbose_name_plural} the user can see. Filter with "
            "conditions, sort, and page with limit and offset; result_type 'count' or "
            "'exists' returns a number or a boolean instead of rows.",
            parameters=read_schema(self.fields, default_limit=default_limit, max_limit=max_limit),
            default_limit=default_limit,
            max_limit=max_limit,
            approval=approval,
        )

    def get(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        approval: bool = False,
    ) -> ModelTool:
        """A tool that fetches one row by primary key (default name `get_<model>`)."""
        return _GetTool(
            self,
            name=name or f"get_{self._model_name}",
            description=description or f"Fetch one {self.opts.verbose_name} by {self.pk.name}.",
            parameters=self._pk_schema(),
            approval=approval,
        )

    def create(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        approval: bool = True,
    ) -> ModelTool:
        """A tool that creates a row from the writable fields (default name `create_<model>`).

        Its calls wait for the user's approval unless `approval=False` (or the project's
        `AI_CHAT_TOOL_APPROVAL` says otherwise); so do `update`'s and `destroy`'s.
        """
        required = [
            name
            for name, field in self.writable.items()
            if not (field.null or field.blank or field.has_default())
        ]
        return _CreateTool(
            self,
            name=name or f"create_{self._model_name}",
            description=description or f"Create a {self.opts.verbose_name}; returns it as saved.",
            parameters=object_schema(
                {name: self._schemas[name] for name in self.writable}, required
            ),
            approval=approval,
        )

    def update(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        approval: bool = True,
    ) -> ModelTool:
        """A tool that changes writable fields of one row (default name `update_<model>`)."""
        schema = self._pk_schema()
        schema["properties"].update({name: self._schemas[name] for name in self.writable})
        return _UpdateTool(
            self,
            name=name or f"update_{self._model_name}",
            description=description
            or f"Change fields of one {self.opts.verbose_name}, found by {self.pk.name}; "
            "fields left out keep their value. Returns it as saved.",
            parameters=schema,
            approval=approval,
        )

    def destroy(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        approval: bool = True,
    ) -> ModelTool:
        """A tool that deletes one row by primary key (default name `destroy_<model>`)."""
        return _DestroyTool(
            self,
            name=name or f"destroy_{self._model_name}",
            description=description
            or f"Delete one {self.opts.verbose_name}, found by {self.pk.name}.",
            parameters=self._pk_schema(),
            approval=approval,
        )

    # Shared by the tools, and by your own function tools -----------------------------------------

    def queryset(self, actor: Any) -> models.QuerySet[M]:
        """The rows `actor` may see: the default manager's queryset through the row scope."""
        queryset = self.model._default_manager.all()
        return queryset if self._scope is None else self._scope(queryset, actor)

    def permission(self, action: str) -> str:
        """The Django permission for `action` (`view`, `add`, `change`, `delete`)."""
        return f"{self.opts.app_label}.{get_permission_codename(action, self.opts)}"

    def to_json(self, instance: M) -> dict[str, Any]:
        """The exposed fields of `instance`, as the tools return them."""
        return to_json(instance, list(self.fields.values()))

    # Internals ---------------------------------------------------------------------------------

    @property
    def _model_name(self) -> str:
        return _identifier(self.opts.verbose_name)

    def _concrete_field(self, name: str) -> models.Field[Any, Any]:
        try:
            field = self.opts.get_field(name)
        except FieldDoesNotExist:
            known = ", ".join(f.name for f in self.opts.concrete_fields)
            raise ConfigurationError(
                f"{self.model.__name__} has no field {name!r}. Its fields are: {known}."
            ) from None
        if not isinstance(field, models.Field) or not field.concrete or field.many_to_many:
            raise ConfigurationError(
                f"{self.model.__name__}.{name} is a relation without a column: only concrete "
                "fields and foreign keys can be exposed."
            )
        return field

    def _resolve_scope(self, scope: Scope | str | _Default | None) -> Scope | None:
        if scope is _DEFAULT:
            if self.owner is not None:
                return self._owner_scope
            if callable(getattr(self.model._default_manager.all(), "for_actor", None)):
                scope = "for_actor"
            else:
                raise ConfigurationError(
                    f"ModelTools({self.model.__name__}) needs a row scope: pass owner='<user "
                    "foreign key>', scope=<callable or queryset method name>, define "
                    f"{self.model.__name__}'s queryset method for_actor(actor), or pass "
                    "scope=None to expose every row to anyone with the model permission."
                )
        if isinstance(scope, str):
            method = scope
            if not callable(getattr(self.model._default_manager.all(), method, None)):
                raise ConfigurationError(
                    f"scope={method!r}: {self.model.__name__}'s default queryset has no method "
                    f"{method!r}."
                )
            return lambda queryset, actor: getattr(queryset, method)(actor)
        return scope

    def _owner_scope(self, queryset: models.QuerySet[Any], actor: Any) -> models.QuerySet[Any]:
        assert self.owner is not None
        if actor is not None and not isinstance(actor, self.owner.related_model):  # type: ignore[arg-type]
            return queryset.none()  # e.g. AnonymousUser: owns nothing
        return queryset.filter(**{self.owner.name: actor})

    def _pk_schema(self) -> dict[str, Any]:
        return object_schema({self.pk.name: self._schemas[self.pk.name]}, [self.pk.name])

    def _fetch(self, actor: Any, arguments: dict[str, Any]) -> M:
        raw = arguments.get(self.pk.name)
        if raw is None:
            raise ToolError(f"Missing argument {self.pk.name!r}.")
        try:
            return self.queryset(actor).get(pk=to_python(self.pk, raw))
        except (ToolError, ObjectDoesNotExist):
            raise ToolError(
                f"No {self.opts.verbose_name} with {self.pk.name}={raw!r} "
                "(it does not exist or is not visible to the user)."
            ) from None

    def _save(self, instance: M, actor: Any, values: dict[str, Any], verb: str) -> dict[str, Any]:
        for name, value in values.items():
            field = self.writable[name]
            python = None if value is None else to_python(field, value)
            if python is not None and isinstance(field, models.ForeignKey):
                self._check_visible_target(field, python, raw=value, actor=actor)
            setattr(instance, field.attname, python)
        try:
            instance.full_clean()
        except ValidationError as error:
            raise ToolError(
                f"Could not {verb} the {self.opts.verbose_name}:\n{validation_message(error)}"
            ) from None
        instance.save()
        # Re-read through the scope: the answer shows what the database holds, and a row that
        # left the scope is rolled back (raising inside the caller's atomic block).
        saved = self.queryset(actor).filter(pk=instance.pk).first()
        if saved is None:
            raise ToolError(
                f"Could not {verb} the {self.opts.verbose_name}: the result would not be "
                "visible to the user. Nothing was saved."
            )
        return self.to_json(saved)

    def _check_visible_target(
        self, field: models.ForeignKey[Any, Any], value: Any, *, raw: Any, actor: Any
    ) -> None:
        # A foreign key may only name a row the actor can see, when the related model says which
        # (its queryset's `for_actor`): otherwise the model could attach rows to another user's
        # and, from the validation message, learn which ids exist.
        related: type[models.Model] = field.related_model
        for_actor = getattr(related._default_manager.all(), "for_actor", None)
        if not callable(for_actor):
            return
        if not for_actor(actor).filter(**{field.target_field.attname: value}).exists():
            raise ToolError(
                f"Invalid value {raw!r} for {field.name!r}: no {related._meta.verbose_name} "
                f"with {field.target_field.name}={raw!r} (it does not exist or is not visible "
                "to the user)."
            )


class ModelTool(Tool):
    """A tool built by `ModelTools`; `action` is the Django permission action it needs."""

    action: ClassVar[str]

    def __init__(
        self,
        tools: ModelTools[Any],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        approval: bool = False,
    ) -> None:
        """Bind the tool to its `ModelTools` (use `ModelTools.read()` and friends instead)."""
        super().__init__(
            name=name, description=description, parameters=parameters, approval=approval
        )
        self.tools = tools

    def describe_arguments(self, arguments: dict[str, Any]) -> list[tuple[str, str]]:
        """The arguments labelled with the model fields' verbose names ("Due date", ...)."""
        fields = {**self.tools.fields, **self.tools.writable}
        labels = {
            name: _capitalised(str(field.verbose_name))
            for name, field in fields.items()
            if name in arguments
        }
        return describe_arguments(self.parameters, arguments, labels)

    @property
    def permissions(self) -> list[str]:
        """Any one of these Django permissions lets an actor use the tool."""
        return [self.tools.permission(self.action)]

    def has_permission(self, actor: Any) -> bool:
        """Whether `actor` holds one of `permissions` (always, when permissions are not checked)."""
        if not self.tools.check_permissions:
            return True
        return any(actor_has_perms(actor, [perm]) for perm in self.permissions)

    async def acall(self, arguments: dict[str, Any], actor: Any) -> Any:
        """Check the permission and the arguments, then run the action in Django's sync thread."""
        return await sync_to_async(self.call, thread_sensitive=True)(arguments, actor)

    def call(self, arguments: dict[str, Any], actor: Any) -> Any:
        """Sync `acall`, for sync code and tests.

        Raises:
            ToolError: The actor lacks the permission, or the arguments are invalid.
        """
        if not self.has_permission(actor):
            raise ToolError(
                f"Permission denied: {self.name!r} needs the "
                f"{' or '.join(map(repr, self.permissions))} permission."
            )
        arguments = check_arguments(arguments, self.parameters["properties"])
        return self._run(arguments, actor)

    @abc.abstractmethod
    def _run(self, arguments: dict[str, Any], actor: Any) -> Any: ...


class _ReadTool(ModelTool):
    action = "view"

    def __init__(
        self,
        tools: ModelTools[Any],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        default_limit: int,
        max_limit: int,
        approval: bool = False,
    ) -> None:
        super().__init__(
            tools, name=name, description=description, parameters=parameters, approval=approval
        )
        self.default_limit = default_limit
        self.max_limit = max_limit

    @property
    def permissions(self) -> list[str]:
        # As in the admin: whoever may change rows may see them.
        return [self.tools.permission("view"), self.tools.permission("change")]

    def _run(self, arguments: dict[str, Any], actor: Any) -> Any:
        tools = self.tools
        result_type = arguments.get("result_type", "run_query")
        if result_type not in RESULT_TYPES:
            raise ToolError(
                f"result_type must be one of {', '.join(RESULT_TYPES)}, not {result_type!r}."
            )
        limit = _integer(arguments, "limit", self.default_limit, minimum=1)
        offset = _integer(arguments, "offset", 0, minimum=0)
        queryset = tools.queryset(actor).filter(filter_q(arguments.get("filter"), tools.fields))
        if result_type == "count":
            return queryset.count()
        if result_type == "exists":
            return queryset.exists()
        order = ordering(arguments.get("sort"), tools.fields, tools.pk.name)
        rows = queryset.order_by(*order)[offset : offset + min(limit, self.max_limit)]
        return [tools.to_json(row) for row in rows]


class _GetTool(ModelTool):
    action = "view"

    @property
    def permissions(self) -> list[str]:
        return [self.tools.permission("view"), self.tools.permission("change")]

    def _run(self, arguments: dict[str, Any], actor: Any) -> Any:
        return self.tools.to_json(self.tools._fetch(actor, arguments))


class _CreateTool(ModelTool):
    action = "add"

    def _run(self, arguments: dict[str, Any], actor: Any) -> Any:
        tools = self.tools
        with transaction.atomic():
            instance = tools.model()
            if tools.owner is not None:
                if actor is not None and not isinstance(actor, tools.owner.related_model):  # type: ignore[arg-type]
                    raise ToolError(f"Only signed-in users can create a {tools.opts.verbose_name}.")
                setattr(instance, tools.owner.name, actor)
            if tools.on_create is not None:
                tools.on_create(instance, actor)
            return tools._save(instance, actor, arguments, "create")


class _UpdateTool(ModelTool):
    action = "change"

    def _run(self, arguments: dict[str, Any], actor: Any) -> Any:
        tools = self.tools
        values = {k: v for k, v in arguments.items() if k != tools.pk.name}
        if not values:
            raise ToolError(
                f"Nothing to update: pass {tools.pk.name!r} and at least one of: "
                f"{', '.join(tools.writable)}."
            )
        with transaction.atomic():
            return tools._save(tools._fetch(actor, arguments), actor, values, "update")


class _DestroyTool(ModelTool):
    action = "delete"

    def _run(self, arguments: dict[str, Any], actor: Any) -> Any:
        tools = self.tools
        with transaction.atomic():
            instance = tools._fetch(actor, arguments)
            deleted = tools.to_json(instance)
            instance.delete()
        return {"deleted": deleted}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _identifier(verbose_name: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(verbose_name).lower()).strip("_")


def _integer(arguments: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = arguments.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ToolError(f"{key!r} must be an integer >= {minimum}, not {value!r}.")
    return value
