from django.shortcuts import get_object_or_404, render

from .models import Page


def home(request):
    return render(request, 'pages/home.html', {'pages': Page.objects.order_by('title')})


def page(request, path):
    return render(request, 'pages/page.html', {'page': get_object_or_404(Page, path=path)})
