"""The uploads app: one-time upload URLs (and, on the same URL, resumable tus uploads)."""

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "uploads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from api.request_log import register_secret_path

        # An upload URL's secret is its only credential: no log line holds it whole.
        register_secret_path(r"/uploads/[0-9a-fA-F-]{36}/(?P<secret>[A-Za-z0-9_-]+)")
