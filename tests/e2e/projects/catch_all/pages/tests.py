from django.test import TestCase

from .models import Page


class PageTests(TestCase):
    def test_lists_the_pages(self):
        Page.objects.create(path='about', title='About us')
        response = self.client.get('/')
        self.assertContains(response, 'About us')

    def test_serves_a_page_by_its_path(self):
        Page.objects.create(path='about/team', title='Our team')
        self.assertContains(self.client.get('/about/team'), 'Our team')

    def test_an_unknown_path_is_not_found(self):
        self.assertEqual(self.client.get('/no/such/page').status_code, 404)
