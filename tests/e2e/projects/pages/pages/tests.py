from django.contrib.auth import get_user_model
from django.test import TestCase

from .models import Page


class HomePageTests(TestCase):
    def test_lists_the_pages(self):
        Page.objects.create(path='about', title='About us')
        response = self.client.get('/')
        self.assertContains(response, 'About us')


class LoginTests(TestCase):
    def test_a_user_signs_in(self):
        get_user_model().objects.create_user('ada', 'ada@example.com', 'a-long-password-42')
        response = self.client.post(
            '/accounts/login/', {'username': 'ada', 'password': 'a-long-password-42'}
        )
        self.assertRedirects(response, '/', fetch_redirect_response=False)
