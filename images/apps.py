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
    # a threaded worker from multiplying that peak: IMAGE_DECODE_CONCURRENCY decodes per process.
    decode_slots: threading.BoundedSemaphore

    def ready(self) -> None:
        self.decode_slots = threading.BoundedSemaphore(settings.IMAGE_DECODE_CONCURRENCY)
        from api.exceptions import register_statuses
        from images.exceptions import PIXEL_ERROR_STATUSES

        register_statuses(PIXEL_ERROR_STATUSES)
        from images.pixels.decoding import bound_pillow

        # Our own pixel limits are checked from the header before anything is decoded, and again after
        # every seek (images/pixels/decoding.py); Pillow's own check, at the same number, is the line
        # behind them, inside the decoder: never off.
        bound_pillow(settings.IMAGE_MAX_PIXELS)
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
