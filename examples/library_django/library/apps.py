"""App configuration."""

from __future__ import annotations

from django.apps import AppConfig


class LibraryConfig(AppConfig):
    """The library app."""

    name = "library"
    default_auto_field = "django.db.models.BigAutoField"
