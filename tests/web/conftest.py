"""Users and logged-in clients for the web tests."""
import pytest
from django.test import Client

from .helpers import PASSWORD


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="radiologist", password=PASSWORD)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="other", password=PASSWORD)


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def other_client(other_user):
    c = Client()
    c.force_login(other_user)
    return c
