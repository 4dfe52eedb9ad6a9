"""The images app, and what it sets up once when the process starts (not when a module is imported)."""

from __future__ import annotations

import threading

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class ImagesConfig(AppConfig):
    name = "images"
    default_auto_field = "django.db.models.BigAutoField"

    # Decoding is where memory peaks (a PNG at the pixel limit decodes whole, ~480 MB as RGBA). This keeps
    # a threaded worker from multiplying that peak: IMAGE_DECODE_CONCURRENCY decodes per process, each
    # waited for at most IMAGE_DECODE_WAIT_SECONDS (images/pipeline.py).
    decode_slots: threading.BoundedSemaphore

    def ready(self) -> None:
        self.decode_slots = threading.BoundedSemaphore(settings.IMAGE_DECODE_CONCURRENCY)
        from api.exceptions import register_statuses
        from images.exceptions import PIXEL_ERROR_STATUSES

        register_statuses(PIXEL_ERROR_STATUSES)
        from images import pipeline

        pipeline.bound_pillow()
        from images.renditions import configured_presets  # needs the models, loaded by now

        try:
            configured_presets()
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(f"IMAGE_PRESETS: {exc}") from exc
        from images.signing import keys_from_setting

        try:
            keys_from_setting(settings.IMAGERY_SIGNING_KEYS, secret_key=settings.SECRET_KEY)
        except ValueError as exc:
            raise ImproperlyConfigured(f"IMAGERY_SIGNING_KEYS: {exc}") from exc
        unknown = set(settings.IMAGE_PUBLIC_PRESETS) - set(configured_presets())
        if unknown:
            raise ImproperlyConfigured(
                f"IMAGE_PUBLIC_PRESETS names no preset of IMAGE_PRESETS: {sorted(unknown)}"
            )
        unknown = set(settings.IMAGE_EAGER_PRESETS) - set(configured_presets())
        if unknown:
            raise ImproperlyConfigured(
                f"IMAGE_EAGER_PRESETS names no preset of IMAGE_PRESETS: {sorted(unknown)}"
            )
