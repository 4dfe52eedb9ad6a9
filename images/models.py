"""The Image: one stored, processed file and what we know about it."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from images.formats import OutputFormat
from images.titles import TITLE_MAX_LENGTH

# How a format is written for people, where its enum name is not it.
_LABELS = {OutputFormat.WEBP: "WebP"}

# Formats a stored file can have: the ones processing writes, with the values it uses.
ImageFormat = models.TextChoices(
    "ImageFormat", [(f.name, (f.value, _LABELS.get(f, f.name))) for f in OutputFormat]
)


class Visibility(models.TextChoices):
    """Who may read an image: anyone, or only the key that uploaded it and admin keys (images/visibility)."""

    PUBLIC = "public"
    PRIVATE = "private"


class Image(models.Model):
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    # `title` case- and unicode-folded (see images.titles.fold); what the title filter searches.
    title_folded = models.TextField(editable=False)
    # The storage name, content-addressed: images/ab/cd/<sha256>.<ext>. Several rows may share one.
    file = models.FileField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8, choices=ImageFormat.choices)
    size = models.PositiveBigIntegerField(help_text="Bytes of the stored file.")
    created_at = models.DateTimeField(default=timezone.now)
    # What a client shows until the file arrives (images.pixels.placeholders): a ThumbHash in base64 and the
    # dominant colour as #rrggbb. NULL (not "") for images stored before they existed, until
    # `manage.py backfill_placeholders` fills them: a nullable column without a default is the one that
    # SQLite adds without rebuilding the table, which would drop the counter's triggers (migration
    # 0002). No CHECK constraint for the same reason; only images.pixels.placeholders writes them.
    placeholder = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    color = models.CharField(max_length=7, null=True, blank=True)  # noqa: DJ001
    # The perceptual hash (images.pixels.hashing): 64 bits as a signed bigint, NULL until known (older rows
    # until `backfill_placeholders`). Its three bands (22, 21 and 21 bits, most significant first), each
    # B-tree indexed with the hash, are what `similar_to` looks up (multi-index hashing,
    # images.selectors.image_similar): every hash within D bits has a band within about D / 3 bits of the
    # query's. Written only with `phash`.
    phash = models.BigIntegerField(null=True, blank=True)
    phash_band0 = models.IntegerField(null=True, blank=True, editable=False)
    phash_band1 = models.IntegerField(null=True, blank=True, editable=False)
    phash_band2 = models.IntegerField(null=True, blank=True, editable=False)
    # The oldest earlier image of the same owner with the same stored file, when this one was uploaded
    # (images.services.image_upload); NULL when there was none, or once that image is deleted (image_delete
    # clears it). No foreign-key constraint: the column is added in place on SQLite (see `placeholder`),
    # and the delete clears it in its own transaction.
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        editable=False,
    )
    # Raised by one with every change of the row (a title, a placeholder): the object's ETag is made from it
    # and the answered fields (images.serializers.image_etag), never from the host the request named.
    version = models.PositiveIntegerField(default=1, editable=False)
    # public or private. Private files live under their own prefix (images.storage.PRIVATE_PREFIX), which no
    # unsigned URL reaches; the image count keeps how many rows are private (migration 0007).
    visibility = models.CharField(max_length=7, choices=Visibility.choices, default=Visibility.PUBLIC)
    # The focal point every crop keeps (its owner's choice), as fractions of the width and height, (0, 0)
    # the top left; both NULL when there is none. Added in place like `version` (migration 0008).
    focal_x = models.FloatField(null=True, blank=True)
    focal_y = models.FloatField(null=True, blank=True)
    # The app's own data on the image: a flat JSON object of scalars, at most 2 KB (images.metadata says
    # what is allowed; every write validates it). jsonb on PostgreSQL, with a GIN index (jsonb_path_ops) and
    # a CHECK that it is an object, both made by migration 0010 alone: the index is PostgreSQL's (SQLite
    # filters by JSON1 without one), so the model does not declare it.
    metadata = models.JSONField(default=dict, blank=True)
    # The API key that uploaded it (none when access is open); kept when the key is deleted.
    api_key = models.ForeignKey(
        "rest_framework_api_key.APIKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="images",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="image_newest_first"),
            # An upload's exact duplicates (the same stored file) and a delete's "is the file still used".
            models.Index(fields=["file"], name="image_file"),
            # A band, then what `similar_to` reads of a candidate: the whole hash (its exact distance) and
            # the id, so the candidates are sorted out from the index alone (images.selectors).
            models.Index(fields=["phash_band0", "phash", "id"], name="image_phash_band0"),
            models.Index(fields=["phash_band1", "phash", "id"], name="image_phash_band1"),
            models.Index(fields=["phash_band2", "phash", "id"], name="image_phash_band2"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(width__gt=0), name="image_width_positive"),
            models.CheckConstraint(condition=Q(height__gt=0), name="image_height_positive"),
            models.CheckConstraint(condition=Q(size__gt=0), name="image_size_positive"),
            models.CheckConstraint(condition=~Q(title=""), name="image_title_not_empty"),
            models.CheckConstraint(condition=Q(format__in=ImageFormat.values), name="image_format_known"),
            models.CheckConstraint(condition=Q(version__gt=0), name="image_version_positive"),
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values), name="image_visibility_known"
            ),
            models.CheckConstraint(
                condition=Q(focal_x__gte=0, focal_x__lte=1), name="image_focal_x_fraction"
            ),
            models.CheckConstraint(
                condition=Q(focal_y__gte=0, focal_y__lte=1), name="image_focal_y_fraction"
            ),
            models.CheckConstraint(
                condition=Q(focal_x__isnull=True, focal_y__isnull=True)
                | Q(focal_x__isnull=False, focal_y__isnull=False),
                name="image_focal_both_or_neither",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.width}x{self.height} {self.format})"

    @property
    def focal(self) -> tuple[float, float] | None:
        """The focal point (x, y), or None."""
        if self.focal_x is None or self.focal_y is None:
            return None
        return (self.focal_x, self.focal_y)
