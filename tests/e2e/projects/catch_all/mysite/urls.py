"""
URL configuration for mysite project: the admin, then every other path is a page (a CMS's page
router, as in Wagtail's `path("", include(wagtail_urls))`).
"""
from django.contrib import admin
from django.urls import path, re_path

from pages import views

urlpatterns = [
    path('', views.home, name='home'),
    path('admin/', admin.site.urls),
    re_path(r'^(?P<path>.*)$', views.page, name='page'),
]
