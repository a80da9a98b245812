from __future__ import annotations

from functools import partial

from django_ai_chat.gen.patch.urls import include_new
from tests.gen.patch.tools import check_noop, check_transformed

include_chat = partial(include_new, route="chat", urlconf="chat.urls")


def test_dynamic_urlpatterns_are_left_alone() -> None:
    check_noop(include_chat, "urlpatterns = build_patterns()\n", recognised=False)


def test_rebound_urlpatterns_are_left_alone() -> None:
    source = "urlpatterns = [\n    path('a/', view),\n]\nif X:\n    urlpatterns = other()\n"
    check_noop(include_chat, source, recognised=False)


def test_extended_urlpatterns_get_the_include_in_their_literal() -> None:
    check_transformed(
        include_chat,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('a/', view),
        ] + static('/media/')
        if DEBUG:
            urlpatterns += static_patterns()
            urlpatterns = [path('__debug__/', include(toolbar)), *urlpatterns]
        urlpatterns = urlpatterns + [path('', include(wagtail_urls))]
        """,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('a/', view),
            path('chat/', include('chat.urls')),
        ] + static('/media/')
        if DEBUG:
            urlpatterns += static_patterns()
            urlpatterns = [path('__debug__/', include(toolbar)), *urlpatterns]
        urlpatterns = urlpatterns + [path('', include(wagtail_urls))]
        """,
    )


def test_the_include_goes_before_a_catch_all_route() -> None:
    check_transformed(
        include_chat,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('admin/', include(wagtailadmin_urls)),
            path('', include(wagtail_urls)),
        ]
        """,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('admin/', include(wagtailadmin_urls)),
            path('chat/', include('chat.urls')),
            path('', include(wagtail_urls)),
        ]
        """,
    )


def test_the_include_goes_before_a_page_router_that_matches_every_path() -> None:
    check_transformed(
        include_chat,
        """\
        from django.urls import include, path, re_path

        urlpatterns = [
            path('admin/', admin.site.urls),
            path('about/', about),
            re_path(r'^(?P<path>.*)$', page),
        ]
        """,
        """\
        from django.urls import include, path, re_path

        urlpatterns = [
            path('admin/', admin.site.urls),
            path('about/', about),
            path('chat/', include('chat.urls')),
            re_path(r'^(?P<path>.*)$', page),
        ]
        """,
    )


def test_routes_that_do_not_answer_the_prefix_stay_before_the_include() -> None:
    check_transformed(
        include_chat,
        """\
        from django.urls import include, path, re_path

        urlpatterns = [
            re_path(r'^blog/(?P<slug>[-a-z]+)/$', post),
            path('pages/<slug:slug>/', page),
        ]
        """,
        """\
        from django.urls import include, path, re_path

        urlpatterns = [
            re_path(r'^blog/(?P<slug>[-a-z]+)/$', post),
            path('pages/<slug:slug>/', page),
            path('chat/', include('chat.urls')),
        ]
        """,
    )


def test_missing_urlpatterns_are_left_alone() -> None:
    check_noop(include_chat, "from django.urls import path\n", recognised=False)


def test_an_app_already_included_changes_nothing() -> None:
    check_noop(include_chat, "urlpatterns = [path('talk/', include('chat.urls'))]\n")


def test_the_include_is_appended_and_imported() -> None:
    check_transformed(
        include_chat,
        """\
        from django.contrib import admin
        from django.urls import path

        urlpatterns = [
            path('admin/', admin.site.urls),
        ]
        """,
        """\
        from django.contrib import admin
        from django.urls import include, path

        urlpatterns = [
            path('admin/', admin.site.urls),
            path('chat/', include('chat.urls')),
        ]
        """,
    )


def test_the_literal_part_of_a_sum_is_patched() -> None:
    check_transformed(
        include_chat,
        'from django.urls import include, path\n\nurlpatterns = [] + static("/m/")\n',
        "from django.urls import include, path\n\n"
        'urlpatterns = [path("chat/", include("chat.urls"))] + static("/m/")\n',
    )


def test_a_nested_route_and_the_site_root() -> None:
    nested = partial(include_new, route="support/chat", urlconf="support_chat.urls")
    assert 'path("support/chat/", include("support_chat.urls"))' in (
        nested("urlpatterns = []\n") or ""
    )
    root = partial(include_new, route="", urlconf="chat.urls")
    assert 'path("", include("chat.urls"))' in (root("urlpatterns = []\n") or "")


def test_comments_between_routes_stay_where_they_are() -> None:
    check_transformed(
        include_chat,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('a/', view),
            # User management
            path('users/', include('users.urls')),
            # Your stuff: custom urls includes go here
            *static('/media/'),
        ]
        """,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('a/', view),
            # User management
            path('users/', include('users.urls')),
            # Your stuff: custom urls includes go here
            *static('/media/'),
            path('chat/', include('chat.urls')),
        ]
        """,
    )
    check_transformed(
        include_chat,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('a/', view),
            # Wagtail's page serving: anything not caught above
            path('', include(wagtail_urls)),
        ]
        """,
        """\
        from django.urls import include, path

        urlpatterns = [
            path('a/', view),
            path('chat/', include('chat.urls')),
            # Wagtail's page serving: anything not caught above
            path('', include(wagtail_urls)),
        ]
        """,
    )


def test_the_imports_are_merged_into_the_projects_own() -> None:
    check_transformed(
        include_chat,
        """\
        from django.urls import (
            re_path,
        )

        urlpatterns = [re_path('^a/$', view)]
        """,
        """\
        from django.urls import (
            re_path,
            include,
            path,
        )

        urlpatterns = [re_path('^a/$', view), path('chat/', include('chat.urls'))]
        """,
    )
    check_transformed(
        include_chat,
        '"""URLs."""\nurlpatterns = []\n',
        '"""URLs."""\nfrom django.urls import include, path\n'
        'urlpatterns = [path("chat/", include("chat.urls"))]\n',
    )


def test_one_import_per_line_is_respected() -> None:
    check_transformed(
        include_chat,
        "from django.urls import include\nfrom django.urls import path\n\nurlpatterns = []\n",
        "from django.urls import include\nfrom django.urls import path\n\n"
        'urlpatterns = [path("chat/", include("chat.urls"))]\n',
    )
