"""Query parameters of the image list, parsed and validated by django-filter (and documented from here)."""

import django_filters
from django.db.models import QuerySet

from images import selectors
from images.models import Image
from images.titles import TITLE_MAX_LENGTH


class ImageFilter(django_filters.FilterSet):
    title = django_filters.CharFilter(
        method="filter_title",
        max_length=TITLE_MAX_LENGTH,
        help_text="Keep the images whose title contains this text, ignoring case (Unicode too).",
    )

    class Meta:
        model = Image
        fields = ["title"]

    def filter_title(self, queryset: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        return queryset & selectors.image_list(title=value)
