"""Admin helpers: what the chat cost, per user (`UsageAdminMixin`).

The runtime registers no model here (it has none); a generated app's `admin.py` mixes
`UsageAdminMixin` into the admin of its message model.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext

from django_ai_chat.models import _USAGE_TOTALS, AbstractMessage, _conversation_model
from django_ai_chat.ui import format_cost

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest

    _Base = ModelAdmin[Any]
else:
    _Base = object

__all__ = ["USAGE_PERIODS", "UsageAdminMixin"]

USAGE_PERIODS: dict[str, timedelta | None] = {
    "1": timedelta(days=1),
    "7": timedelta(days=7),
    "30": timedelta(days=30),
    "all": None,
}
"""The periods the usage page offers (`?days=`), newest answers first."""


class UsageAdminMixin(_Base):
    """Adds "Usage by user" to the admin of a message model: each user's answers, tokens, cost.

    The page (`<changelist>/usage/`, linked from the change list) needs the view permission of
    the message model; `?days=1|7|30|all` picks the period (30 by default).
    """

    change_list_template = "django_ai_chat/admin/message_change_list.html"
    usage_template = "django_ai_chat/admin/usage_by_user.html"

    def get_urls(self) -> list[URLPattern]:
        """The model's admin URLs, with `usage/` first (before the `<id>/` catch-all)."""
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_usage"
        usage = path("usage/", self.admin_site.admin_view(self.usage_view), name=name)
        return [usage, *super().get_urls()]

    def usage_rows(self, since: Any) -> list[dict[str, Any]]:
        """One row per user (`user`, `answers`, token sums, `cost`), most expensive first."""
        model: type[AbstractMessage] = self.model
        messages = model._default_manager.filter(source=AbstractMessage.Source.AGENT)
        if since is not None:
            messages = messages.filter(inserted_at__gte=since)
        owner_field = _conversation_model(model).owner_field
        if owner_field is None:
            rows = [{"owner": None, **messages.aggregate(**_USAGE_TOTALS)}]
        else:
            rows = [
                dict(row)
                for row in messages.values(owner=F(f"conversation__{owner_field}"))
                .annotate(**_USAGE_TOTALS)
                .order_by(F("cost").desc(nulls_last=True), "-output_tokens")
            ]
        users = get_user_model()._default_manager.in_bulk(
            [row["owner"] for row in rows if row["owner"] is not None]
        )
        for row in rows:
            row["user"] = (
                users.get(row["owner"]) if row["owner"] is not None else gettext("Everyone")
            )
            row["cost_text"] = format_cost(row["cost"])
        return [row for row in rows if row["answers"]]

    def usage_view(self, request: HttpRequest) -> TemplateResponse:
        """The "Usage by user" page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = request.GET.get("days", "30")
        if days not in USAGE_PERIODS:
            days = "30"
        period = USAGE_PERIODS[days]
        rows = self.usage_rows(None if period is None else timezone.now() - period)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Usage by user"),
            "rows": rows,
            "days": days,
            "periods": list(USAGE_PERIODS),
            "totals": {
                key: sum(row[key] for row in rows)
                for key in ("answers", "input_tokens", "output_tokens", "cache_read_tokens")
            },
            "total_cost": format_cost(_sum_known(row["cost"] for row in rows)),
        }
        return TemplateResponse(request, self.usage_template, context)


def _sum_known(costs: Iterable[Decimal | None]) -> Decimal | None:
    known = [cost for cost in costs if cost is not None]
    return sum(known, Decimal(0)) if known else None
