"""Reads: every query the API makes for images."""

from django.db.models import QuerySet

from images.models import Image
from images.titles import fold

MAX_ID = 2**63 - 1


def image_list(*, title: str | None = None) -> QuerySet[Image]:
    """Newest first, id as the tie-break (a total order, so pages never repeat or skip a row).

    `title` keeps the images whose title contains it, ignoring case (Unicode-aware on every database).
    """
    images = Image.objects.order_by("-created_at", "-id")
    if title:
        images = images.filter(title_folded__contains=fold(title))
    return images


def image_get(*, image_id: int) -> Image:
    """Raises Image.DoesNotExist for an unknown id."""
    if not 0 < image_id <= MAX_ID:
        # Larger ids cannot exist, and the database would reject them with an error of its own.
        raise Image.DoesNotExist
    return Image.objects.get(pk=image_id)
