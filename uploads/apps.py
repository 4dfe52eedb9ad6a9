"""The uploads app: one-time upload URLs (and, on the same URL, resumable tus uploads)."""

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    default_auto_field = "django.db.models.BigAutoField"
