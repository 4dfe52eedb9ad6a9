"""Image work that leaves the request: run by the task worker (`manage.py db_worker`, or RQ's), enqueued
through Django's task API (config/tasks.py picks the backend).

- `render_eager_presets`: after an upload, the renditions of `IMAGE_EAGER_PRESETS` are rendered and stored,
  so an app's first view of them is a stored file (Cloudinary's eager transformations);
- `delete_renditions_of`: after a delete, the renditions of a file no row uses any more (on S3, its
  objects) are removed;
- `backfill_placeholders_batch`: one batch of `manage.py backfill_placeholders --queue`.

Each is idempotent (run twice, the second run finds its work done and changes nothing), a no-op when its
image or file is gone, bounded in time by the limits of the work it calls (the render budget and decode
wait of an upload, the store's timeouts), and retried with backoff on failure (`api.task_retry`).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django_tasks import task

from api.task_retry import RetryPolicy, retrying
from images import backfill, renditions, storage
from images.exceptions import RenditionTooLarge, StorageUnavailable
from images.models import Image
from images.selectors import image_file_get, image_file_in_use

logger = logging.getLogger(__name__)

# Five attempts over about ten minutes (10 s, 20 s, 40 s, 80 s before jitter): a store that is down for a
# while, a worker's decode slot taken. A rendition over a limit would be refused again.
RETRY = RetryPolicy(max_attempts=5, first_delay=10.0, max_delay=600.0, permanent=(RenditionTooLarge,))

# What `format=auto` may answer a browser, as Accept headers: none of the modern formats, WebP, AVIF.
# Rendering a preset for each makes its first view a stored file whatever the browser takes.
_ACCEPTS = ("", "image/webp", "image/avif,image/webp")


def eager_presets() -> list[str]:
    """`IMAGE_EAGER_PRESETS`, the presets rendered after every upload (checked at start: images/apps.py)."""
    return list(settings.IMAGE_EAGER_PRESETS)


@task()
def render_eager_presets(*, image_id: int, attempt: int = 1) -> list[str]:
    """Render and store the eager presets of an image; the names stored now (empty when all were there,
    or the image is gone)."""
    with retrying(render_eager_presets, attempt=attempt, kwargs={"image_id": image_id}, policy=RETRY):
        return _render_eager_presets(image_id=image_id)


def _render_eager_presets(*, image_id: int) -> list[str]:
    try:
        row = image_file_get(image_id=image_id)
    except Image.DoesNotExist:
        return []
    source = renditions.Source(name=row.name, width=row.width, height=row.height, format=row.format)
    presets = renditions.configured_presets()
    specs: dict[str, renditions.Spec] = {}
    for preset in eager_presets():
        if preset not in presets:  # the setting changed since the upload
            continue
        for accept in _ACCEPTS:
            spec = renditions.resolve(source, preset=preset, accept=accept, presets=presets)
            if not spec.original:
                specs.setdefault(spec.name(source), spec)
    stored = []
    for name, spec in specs.items():
        if renditions.rendition_open(source, spec) is not None:
            continue  # rendered already (a second run, or a view came first)
        try:
            renditions.rendition_create(source, spec)
        except Image.DoesNotExist:
            return stored  # deleted meanwhile; what was stored is removed with it
        except RenditionTooLarge as exc:
            # Over this deployment's limits (IMAGE_MAX_AVIF_PIXELS…): a view would be refused too.
            logger.info("eager rendition %s skipped: %s", name, exc.message)
            continue
        stored.append(name)
    return stored


@task()
def delete_renditions_of(*, name: str, attempt: int = 1) -> bool:
    """Remove the renditions of the stored file `name` when no row uses it; False when a row uses it
    again (an identical upload came since: its renditions stay)."""
    with retrying(delete_renditions_of, attempt=attempt, kwargs={"name": name}, policy=RETRY):
        if image_file_in_use(name=name):
            return False
        # Outside the file's lock, as image_delete did inline: an identical upload that comes meanwhile
        # loses at most renditions it will render again on demand.
        removed = renditions.delete_renditions(storage.digest_of(name), private=storage.is_private_name(name))
        if not removed:
            raise StorageUnavailable("Some renditions could not be deleted.")
        return True


@task()
def backfill_placeholders_batch(*, files: dict[str, list[int]], attempt: int = 1) -> int:
    """One batch of `backfill_placeholders --queue` (stored name -> ids of its rows); the rows filled.
    Only rows still lacking their placeholder are written: a second run fills nothing."""
    with retrying(backfill_placeholders_batch, attempt=attempt, kwargs={"files": files}, policy=RETRY):
        result = backfill.backfill_batch(files)
        for name, ids in result.unusable.items():
            logger.warning(
                "backfill: rows %s keep no placeholder: %s is missing or does not decode", ids, name
            )
        return result.filled
