"""The image endpoints' serializers: one input serializer per operation (it parses and validates, and the
OpenAPI schema is read from it) and the one output serializer, the image object."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from django.conf import settings
from django.http import QueryDict
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError

from api.conditional import etag_of
from api.pagination import MAX_BIGINT, PageInputSerializer
from api.params import WholeNumberField, one_value_each
from api.schema import CLOSED, MIN_PROPERTIES
from images.exceptions import InvalidMetadata
from images.formats import Fit, Gravity, OutputFormat
from images.metadata import (
    KEY_MAX_LENGTH,
    METADATA_MAX_BYTES,
    Metadata,
    parse_metadata_json,
    validate_filter_value,
    validate_key,
    validate_metadata,
)
from images.models import Image, Visibility
from images.renditions import LADDER, RenditionFormat, configured_presets, preset_urls, srcset
from images.selectors import MAX_SIMILAR_DISTANCE
from images.services import OnDuplicate
from images.signing import signed_query
from images.titles import TITLE_MAX_LENGTH

# Python's whitespace, which trimming removes (JSON Schema's `\\s` differs), as a regex class's body.
_SPACES = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())


class TitleField(serializers.Field):
    """A title (or a search for one) as a form or query parameter: trimmed; empty counts as absent.

    At most TITLE_MAX_LENGTH characters as sent (what a schema's maxLength can say), no NUL or lone
    surrogate (which no database column holds). `blank`: how text of only whitespace counts.
    """

    default_error_messages = {
        "invalid": "Not a valid string.",
        "max_length": f"Ensure this field has no more than {TITLE_MAX_LENGTH} characters.",
        "null_characters_not_allowed": "Null characters are not allowed.",
        "surrogate_characters_not_allowed": "Surrogate characters are not allowed.",
        "blank": "This field may not be only whitespace.",
    }

    def __init__(self, *, blank: Literal["empty", "invalid"], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blank = blank

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if len(data) > TITLE_MAX_LENGTH:
            self.fail("max_length")
        if "\x00" in data:
            self.fail("null_characters_not_allowed")
        if any("\ud800" <= c <= "\udfff" for c in data):
            self.fail("surrogate_characters_not_allowed")
        text = data.strip()
        if data and not text and self.blank == "invalid":
            self.fail("blank")
        return text

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field(
    {
        "type": "string",
        "maxLength": TITLE_MAX_LENGTH,
        "pattern": f"^([^\\u0000]*[^\\u0000{_SPACES}][^\\u0000]*)?$",
    }
)
class UploadTitleField(TitleField):
    """Empty, or not only whitespace."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(blank="invalid", **kwargs)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": TITLE_MAX_LENGTH,
        "pattern": f"^[^\\u0000]*[^\\u0000{_SPACES}][^\\u0000]*$",
    }
)
class EditTitleField(TitleField):
    """A new title: something besides whitespace (there is no file name to fall back on)."""

    default_error_messages = {"empty": "A title needs 1 to 255 characters after trimming."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(blank="invalid", **kwargs)

    def to_internal_value(self, data: Any) -> str:
        title = super().to_internal_value(data)
        if not title:
            self.fail("empty")
        return title


@extend_schema_field({"type": "string", "maxLength": TITLE_MAX_LENGTH, "pattern": "^[^\\u0000]*$"})
class TitleSearchField(TitleField):
    """Only whitespace is as good as empty: no filter."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(blank="empty", **kwargs)


# A focal point's coordinates are kept to 1/10000 of the side: finer than any screen shows, and short in a
# URL (`&focal=0.25,0.7`).
FOCAL_DIGITS = 4


class FractionField(serializers.FloatField):
    """A coordinate of a focal point: a fraction of the width or height, 0 to 1, as a JSON number (a
    string, a boolean, NaN or infinity is refused)."""

    default_error_messages = {
        "invalid": "A number from 0 to 1 (a fraction of the width or height).",
        "range": "Ensure this value is from 0 to 1 (a fraction of the width or height).",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_value=1, **kwargs)
        # Our own range check and message (min_value/max_value stay, for the schema).
        self.validators = []

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, int) and not 0 <= data <= 1:
            # Before float(): a JSON integer of 400 digits is no float at all (OverflowError).
            self.fail("range")
        value = float(data)
        if not math.isfinite(value):
            self.fail("invalid")
        if not 0 <= value <= 1:
            self.fail("range")
        return round(value, FOCAL_DIGITS)


@extend_schema_serializer(component_name="Focal", extensions={CLOSED: True})
class FocalSerializer(serializers.Serializer):
    """A focal point: fractions of the width (`x`) and height (`y`), (0, 0) the top left."""

    x = FractionField(help_text="From the left edge (0) to the right edge (1).")
    y = FractionField(help_text="From the top edge (0) to the bottom edge (1).")

    def to_internal_value(self, data: Any) -> tuple[float, float]:  # type: ignore[override]
        """The point as (x, y), as the services take it."""
        unknown = sorted(set(data) - {"x", "y"}) if isinstance(data, dict) else []
        if unknown:
            raise ValidationError({name: ["A focal point has only `x` and `y`."] for name in unknown})
        value = super().to_internal_value(data)
        return (value["x"], value["y"])


# A focal point as a form field's JSON text, as the schema says it (the validation is FocalSerializer's):
# {"x": <0..1>, "y": <0..1>}, the keys in either order, JSON's own whitespace. What the pattern lets
# through, json.loads reads and FocalSerializer accepts.
_JSON_SPACE = "[ \\t\\n\\r]*"
_JSON_FRACTION = "(0(\\.[0-9]+)?|1(\\.0+)?)"
_MEMBER = {name: f'"{name}"{_JSON_SPACE}:{_JSON_SPACE}{_JSON_FRACTION}' for name in ("x", "y")}
FOCAL_JSON_PATTERN = (
    f"^{_JSON_SPACE}\\{{{_JSON_SPACE}"
    f"({_MEMBER['x']}{_JSON_SPACE},{_JSON_SPACE}{_MEMBER['y']}|{_MEMBER['y']}{_JSON_SPACE},{_JSON_SPACE}{_MEMBER['x']})"
    f"{_JSON_SPACE}\\}}{_JSON_SPACE}$"
)


@extend_schema_field({"type": "string", "pattern": FOCAL_JSON_PATTERN, "example": '{"x": 0.3, "y": 0.25}'})
class FocalFormField(serializers.Field):
    """A focal point in a form (which has no objects): the JSON of PATCH's `focal` object as text."""

    default_error_messages = {
        # (Braces doubled: DRF formats the message.)
        "invalid": 'A focal point as JSON: {{"x": 0.3, "y": 0.25}}, fractions from 0 to 1.',
    }

    def to_internal_value(self, data: Any) -> tuple[float, float]:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            # Strict JSON: NaN and Infinity are no numbers here.
            parsed = json.loads(data, parse_constant=_refuse_constant)
        except ValueError:
            self.fail("invalid")
        focal = FocalSerializer(data=parsed)
        if not focal.is_valid():
            detail = focal.errors
            messages = [f"{name}: {' '.join(map(str, errors))}" for name, errors in detail.items()]
            raise ValidationError(messages or [self.error_messages["invalid"]])
        return focal.validated_data  # type: ignore[return-value]

    def to_representation(self, value: Any) -> Any:
        return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number here")


def _focal_of(image: Image) -> dict[str, float] | None:
    return None if image.focal_x is None else {"x": image.focal_x, "y": image.focal_y}


def gravity_field(**kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=[g.value for g in Gravity],
        help_text=(
            "With `fit=cover`: which part the crop keeps. `center`: the middle; `attention`: the most "
            "salient region (edges, saturation, skin tones); `focal`: centred on the focal point (the "
            "middle without one). A focal point, when given, wins over any gravity. Default: "
            "`IMAGE_DEFAULT_GRAVITY`."
        ),
        **kwargs,
    )


# The metadata object as a schema says it: keys and sizes the schema cannot state (OpenAPI 3.0 has no
# `propertyNames`) are in the description, and the rule is images.metadata's.
METADATA_RULE = (
    f"A flat JSON object, at most {METADATA_MAX_BYTES} bytes as compact UTF-8 JSON (`,` and `:` without "
    f"spaces). Keys: 1 to {KEY_MAX_LENGTH} characters of `A-Z a-z 0-9 _ - . :`. Values: strings (no NUL), "
    "booleans, and finite numbers within ±(2^53 - 1); no null, no nested object or array."
)
METADATA_SCHEMA = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
}


@extend_schema_field(METADATA_SCHEMA)
class MetadataField(serializers.Field):
    """Metadata as a JSON value (a JSON body, and the image object's answer): images.metadata's rule."""

    def to_internal_value(self, data: Any) -> Metadata:
        try:
            return validate_metadata(data)
        except InvalidMetadata as exc:
            raise ValidationError(exc.message, code=exc.code) from None

    def to_representation(self, value: Metadata) -> Metadata:
        return value


@extend_schema_field({"type": "string", "maxLength": 8 * METADATA_MAX_BYTES})
class MetadataFormField(serializers.Field):
    """Metadata in a form: the JSON text of the object (`metadata={"user":"u42"}`)."""

    def to_internal_value(self, data: Any) -> Metadata:
        if not isinstance(data, str):
            self.fail("invalid")
        if not data.strip():
            # An empty field is no metadata, as an empty title is no title.
            return {}
        try:
            return parse_metadata_json(data)
        except InvalidMetadata as exc:
            raise ValidationError(exc.message, code=exc.code) from None

    default_error_messages = {"invalid": "Send the metadata as the JSON text of an object."}


def offer_visibilities(fields: dict[str, serializers.Field]) -> dict[str, serializers.Field]:
    """`visibility`'s choices as this server has them: with access open (IMAGERY_AUTH=off) only `public`,
    so the schema says what is accepted, and `private` is refused with why (read again per request)."""
    field = fields.get("visibility")
    if isinstance(field, serializers.ChoiceField) and settings.IMAGERY_AUTH == "off":
        field.choices = [Visibility.PUBLIC]
        field.error_messages["invalid_choice"] = (
            "Private images need API keys: set IMAGERY_AUTH=write or all, and upload with a key."
        )
    return fields


def visibility_field(**kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=Visibility.values,
        help_text=(
            "`public`: anyone may read it. `private`: only the API key that uploaded it and admin keys see "
            "it (everyone else gets 404, and lists leave it out); its `url`, `srcset` and `presets` are "
            "signed URLs that expire after `IMAGE_SIGNED_URL_TTL`. Needs API keys (`IMAGERY_AUTH=write` "
            "or `all`): with access open, `private` is a 400."
        ),
        **kwargs,
    )


@extend_schema_serializer(component_name="ImageUpload")
class ImageCreateInputSerializer(serializers.Serializer):
    image = serializers.FileField(
        allow_empty_file=False,
        help_text=(
            "The image file: JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF or AVIF, recognised by its "
            f"content. At most {settings.IMAGE_MAX_UPLOAD_BYTES} bytes and "
            f"{settings.IMAGE_MAX_PIXELS} pixels."
        ),
    )
    title = UploadTitleField(
        required=False,
        help_text=(
            "Up to 255 characters, trimmed, without NUL; only whitespace is refused. Default (also for "
            "an empty field): the file name without its extension."
        ),
    )
    width = WholeNumberField(
        required=False,
        min_value=1,
        max_value=settings.IMAGE_MAX_DIMENSION,
        help_text="Target width in pixels. Alone, the height follows the aspect ratio.",
    )
    height = WholeNumberField(
        required=False,
        min_value=1,
        max_value=settings.IMAGE_MAX_DIMENSION,
        help_text="Target height in pixels. Alone, the width follows the aspect ratio.",
    )
    fit = serializers.ChoiceField(
        choices=[fit.value for fit in Fit],
        default=Fit.CONTAIN.value,
        help_text=(
            "How the image fills width x height: `contain` scales to fit inside keeping the aspect "
            "ratio, `cover` scales and crops to exactly the box (which part: `gravity`, or the focal "
            "point), `fill` stretches to exactly the box. With only one of width/height the other "
            "follows the aspect ratio."
        ),
    )
    format = serializers.ChoiceField(
        choices=[
            f.value for f in (OutputFormat.JPEG, OutputFormat.PNG, OutputFormat.WEBP, OutputFormat.AVIF)
        ],
        required=False,
        help_text=(
            "Store in this format. Default: JPEG, PNG, GIF and WebP keep theirs; other formats become PNG "
            "when they have transparency, else JPEG (an animated AVIF: WebP). Transparency stored as JPEG "
            "is flattened onto white."
        ),
    )
    visibility = visibility_field(required=False)
    gravity = gravity_field(required=False)
    focal = FocalFormField(
        required=False,
        help_text=(
            'The image\'s focal point, as JSON: `{"x": 0.3, "y": 0.25}`, fractions of the uploaded '
            "picture's width and height as shown ((0, 0) the top left). Every crop of the image keeps it, "
            "as near the crop's centre as the picture allows (this upload's `fit=cover` too: the object's "
            "`focal` is then where it lands in the stored picture)."
        ),
    )
    on_duplicate = serializers.ChoiceField(
        choices=OnDuplicate.values,
        default=OnDuplicate.CREATE.value,
        help_text=(
            "When the stored file would be identical to one of an image you uploaded before (the same "
            "processed bytes, the same visibility; with API keys off every upload has the same owner): "
            "`create` (the default) makes a new image all the same and names the oldest such in "
            "`duplicate_of`; `reuse` makes nothing and answers `200` with that image. Another key's images "
            "are never considered."
        ),
    )
    metadata = MetadataFormField(
        required=False,
        help_text=(
            "The app's own data on the image, as the JSON text of an object, e.g. "
            '`{"user": "u42", "album": 7}`. ' + METADATA_RULE + " Default: `{}`."
        ),
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        return offer_visibilities(super().get_fields())


@extend_schema_serializer(component_name="ImageUpdate", extensions={CLOSED: True, MIN_PROPERTIES: 1})
class ImageUpdateInputSerializer(serializers.Serializer):
    """An edit: the title, the visibility, the metadata and/or the focal point. Any other field is refused
    by name (upload again to change the pixels)."""

    title = EditTitleField(
        required=False,
        help_text="1-255 characters after trimming, without NUL.",
    )
    visibility = visibility_field(required=False)
    focal = FocalSerializer(
        required=False,
        allow_null=True,
        help_text=(
            'The focal point every crop of the image keeps (`{"x": 0.3, "y": 0.6}`, fractions of the '
            "width and height), as near the crop's centre as the picture allows; `null` removes it. The "
            "crops made around the old point are not served again (their names and the object's preset "
            "URLs change)."
        ),
    )
    metadata = MetadataField(
        required=False,
        help_text=(
            "Replaces the whole metadata object (keys left out are removed; `{}` empties it), as "
            "Cloudflare Images' update does. " + METADATA_RULE
        ),
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        return offer_visibilities(super().get_fields())

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            errors = dict(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        else:
            errors = {}
            if "title" in value and not value["title"]:
                errors["title"] = ["A title needs 1 to 255 characters after trimming."]
            elif not value and not unknown:
                errors["title"] = [
                    "Give `title`, `visibility`, `metadata` and/or `focal`: the fields that can be changed."
                ]
        for name in unknown:
            errors[name] = [
                "Only `title`, `visibility`, `metadata` and `focal` can be changed; upload the image again "
                "to change anything else."
            ]
        if errors:
            raise ValidationError(errors)
        return value


def phash_hex(value: int) -> str:
    """A perceptual hash as the API writes it: 16 lowercase hex digits of its 64 bits (the database keeps
    them as a signed bigint)."""
    return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016x}"


@extend_schema_field({"type": "string", "pattern": "^[0-9a-f]{16}$", "nullable": True})
class PhashField(serializers.Field):
    """The `phash` column, read-only, in hex."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def to_representation(self, value: int) -> str:
        return phash_hex(value)


@extend_schema_serializer(component_name="Image")
class ImageOutputSerializer(serializers.ModelSerializer):
    """The image object. A private image's `url`, `srcset` and `presets` are signed URLs (images/signing.py),
    as are the `srcset` of every image with IMAGE_RENDITIONS_REQUIRE_SIGNATURE=all; with the context
    `unsigned` (the ETag), the same URLs without signatures."""

    url = serializers.SerializerMethodField(
        help_text="Absolute URL of the stored file; for a private image, a signed URL of its file endpoint."
    )
    visibility = serializers.ChoiceField(choices=Visibility.values, help_text="`public` or `private`.")
    srcset = serializers.SerializerMethodField(
        help_text=(
            "A ready `srcset` attribute: the image's renditions at every ladder width below its own, "
            "then its own width (`…/images/12/file?width=320 320w, …`); pair it with `sizes`."
        )
    )
    presets = serializers.SerializerMethodField(
        help_text="The URL of each named rendition (`IMAGE_PRESETS`), by name: `thumb`, `small`, `large`…"
    )
    placeholder = serializers.CharField(
        allow_null=True,
        help_text=(
            "A ThumbHash of the image (base64, about 25-35 characters): a blurred picture with its aspect "
            "ratio and transparency to show until the file has loaded (decode it with the `thumbhash` "
            "package of npm or PyPI). Null for an image stored before placeholders existed, until "
            "`manage.py backfill_placeholders` has run."
        ),
    )
    color = serializers.RegexField(
        r"^#[0-9a-f]{6}$",
        allow_null=True,
        help_text=(
            "The dominant colour, `#rrggbb`: the largest cluster of a palette of a small version, to show "
            "as a background until the file has loaded. Null like `placeholder`."
        ),
    )
    focal = serializers.SerializerMethodField(
        help_text=(
            "The focal point every crop keeps (fractions of the width and height), or null: set on upload "
            "(`focal`) or with PATCH."
        ),
    )
    duplicate_of = serializers.IntegerField(
        allow_null=True,
        source="duplicate_of_id",
        help_text=(
            "When this image was uploaded, the id of the oldest image its uploader had uploaded before with "
            "an identical stored file (the same processed bytes and visibility; with API keys off every "
            "upload has the same uploader). Null when there was none, or once that image is deleted. "
            "Another key's images are never named."
        ),
    )
    phash = PhashField(
        help_text=(
            "A perceptual hash of the picture (64-bit DCT hash, 16 hex digits; an animation's first frame, "
            "transparency on white): the same picture resized, re-encoded or lightly cropped differs in few "
            "bits, unrelated pictures in about 32. The number of differing bits is what `similar_to` "
            "measures. Null like `placeholder`."
        ),
    )
    metadata = MetadataField(
        help_text="The app's own data on the image, as it was last set (`{}`: none). " + METADATA_RULE
    )

    class Meta:
        model = Image
        fields = [
            "id",
            "url",
            "title",
            "width",
            "height",
            "format",
            "size",
            "created_at",
            "srcset",
            "presets",
            "placeholder",
            "color",
            "phash",
            "duplicate_of",
            "visibility",
            "focal",
            "metadata",
        ]
        # An output serializer: every field is always answered, so the schema marks each required.
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, image: Image) -> str:
        if image.visibility == Visibility.PRIVATE:
            # Its stored file is under the private prefix, which no unsigned URL reaches.
            return self._signed(image, self._file_url(image), {})
        return self._absolute(image.file.url)

    def get_srcset(self, image: Image) -> str:
        url = self._file_url(image)
        if not self._signs_sizes(image):
            return srcset(url, image.width)
        widths = [*(w for w in LADDER if w < image.width), image.width]
        return ", ".join(f"{self._signed(image, url, {'width': w})} {w}w" for w in widths)

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "format": "uri"}})
    def get_presets(self, image: Image) -> dict[str, str]:
        url = self._file_url(image)
        names = list(settings.IMAGE_PRESETS)
        focal = image.focal
        if image.visibility != Visibility.PRIVATE:
            return preset_urls(url, names, focal=focal)
        public = set(settings.IMAGE_PUBLIC_PRESETS)
        unsigned = preset_urls(url, names, focal=focal)
        # The focal point is no signed parameter (it does not choose the answer; the row's point does): it
        # follows the signature, only to change the URL with the point.
        return {
            name: unsigned[name]
            if name in public
            else self._signed(image, url, {"preset": name}) + unsigned[name].partition(f"preset={name}")[2]
            for name in names
        }

    @extend_schema_field(FocalSerializer(allow_null=True))
    def get_focal(self, image: Image) -> dict[str, float] | None:
        return _focal_of(image)

    def _signs_sizes(self, image: Image) -> bool:
        return answers_signed_urls(image)

    def _signed(self, image: Image, url: str, params: dict[str, object]) -> str:
        """`url` with `params`, signed (the ETag's form: unsigned)."""
        if self.context.get("unsigned"):
            query = "&".join(f"{k}={v}" for k, v in params.items())
            return f"{url}?{query}" if query else url
        return f"{url}?{signed_query(image.pk, params)}"

    def _file_url(self, image: Image) -> str:
        """`…/images/{id}/file`, built from the row: the absolute prefix once per serializer."""
        prefix = getattr(self, "_files_prefix", None)
        if prefix is None:
            prefix = self._absolute(reverse("image-collection"))
            self._files_prefix = prefix
        return f"{prefix}/{image.pk}/file"

    def _absolute(self, url: str) -> str:
        """`url` made absolute for the request being answered; as it is without one (`image_etag`)."""
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    def to_representation(self, image: Image) -> dict[str, Any]:
        # The same answer as ModelSerializer's field-by-field one (a test compares them), at a fifth of
        # the cost: no per-request field introspection, no per-field calls. Lists serialize many.
        return {
            "id": image.pk,
            "url": self.get_url(image),
            "title": image.title,
            "width": image.width,
            "height": image.height,
            "format": image.format,
            "size": image.size,
            "created_at": _DATETIME.to_representation(image.created_at),
            "srcset": self.get_srcset(image),
            "presets": self.get_presets(image),
            "placeholder": image.placeholder,
            "color": image.color,
            "phash": None if image.phash is None else phash_hex(image.phash),
            "duplicate_of": image.duplicate_of_id,
            "visibility": image.visibility,
            "focal": _focal_of(image),
            "metadata": image.metadata,
        }


_DATETIME = serializers.DateTimeField()

# `distance` when `similar_to` comes without one: the same picture resized to half, re-encoded at quality
# 60, converted to WebP or cropped by 5 % stays within it (tests/test_phash.py).
DEFAULT_SIMILAR_DISTANCE = 8


def answers_signed_urls(image: Image) -> bool:
    """Whether the image's object carries signed URLs (which expire): a private image's, and every image's
    `srcset` with IMAGE_RENDITIONS_REQUIRE_SIGNATURE=all."""
    return image.visibility == Visibility.PRIVATE or settings.IMAGE_RENDITIONS_REQUIRE_SIGNATURE == "all"


def image_etag(image: Image) -> str:
    """The image object's ETag: its row's version and what it answers with URLs left as paths (no host).

    The same through every host name the server answers to (a PATCH through another one is no 412), new
    with every change of the row (its version, so a title changed and changed back is still a change), and
    new when what the object answers changes with the settings (its presets). `image` needs `version`.
    """
    # Unsigned: a signed URL's expiry moves every minute, and an ETag must not (a PATCH's If-Match).
    return etag_of([image.version, ImageOutputSerializer(image, context={"unsigned": True}).data])


class ImageListInputSerializer(PageInputSerializer):
    visibility = serializers.ChoiceField(
        choices=Visibility.values,
        default=Visibility.PUBLIC,
        help_text=(
            "`public` (the default): the public images. `private`: private images, for an API key: the "
            "ones it uploaded (an admin key: every one); without a key, a 401."
        ),
    )
    title = TitleSearchField(
        required=False,
        help_text=(
            "Keep the images whose title contains this text, ignoring case (Unicode too). Up to 255 "
            "characters, without NUL; trimmed. Empty (or only whitespace) keeps every image."
        ),
    )
    similar_to = WholeNumberField(
        required=False,
        min_value=1,
        max_value=MAX_BIGINT,
        help_text=(
            "The id of an image you may see: list the images whose `phash` differs from its in at most "
            "`distance` bits (itself left out), nearest first, then by id. Exact: every such image is "
            "found. Within the list's scope (`visibility`) and `title` filter; numbered pages only (a "
            "`cursor` of another list is a 404). An unknown id, or one you may not see, is a 404; an image "
            "without a `phash` yet has none."
        ),
    )
    distance = WholeNumberField(
        required=False,
        min_value=0,
        max_value=MAX_SIMILAR_DISTANCE,
        help_text=(
            f"With `similar_to`: the largest Hamming distance, 0 to {MAX_SIMILAR_DISTANCE} bits (default "
            f"{DEFAULT_SIMILAR_DISTANCE}). 0: the same hash; up to about 8: the same picture resized, "
            "re-encoded or lightly cropped; past 12, unrelated pictures start to appear. Without "
            "`similar_to` it changes nothing (a bad value is a 400 all the same)."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "similar_to" not in attrs:
            # A valid `distance` alone measures from nothing: it changes nothing (a schema cannot say that
            # one parameter needs another, so a client may send both always).
            attrs.pop("distance", None)
            return attrs
        # `similar_to` lists are in numbered pages only. An empty `cursor` names the first page of any list
        # (so, here, page 1); any other is a cursor of another list, which points nowhere in this one: a 404,
        # as for a cursor we did not make (api.pagination.cursor_position).
        if attrs.pop("cursor", ""):
            raise NotFound("Invalid cursor: `similar_to` lists are in numbered pages (`page`).")
        attrs.setdefault("distance", DEFAULT_SIMILAR_DISTANCE)
        return attrs


# A focal point in a URL (`renditions.focal_tag`): two fractions from 0 to 1.
_FRACTION = r"(0(\.[0-9]{1,4})?|1(\.0{1,4})?|0?\.[0-9]{1,4})"
_FOCAL_TAG = rf"^{_FRACTION},{_FRACTION}$"


METADATA_FILTER_PREFIX = "metadata."
METADATA_FILTERS_MAX = 10
METADATA_FILTER_HELP = (
    "**Filter by metadata**: `metadata.KEY=VALUE` keeps the images whose metadata has KEY with that value "
    f"(exactly, case-sensitive); up to {METADATA_FILTERS_MAX} such parameters, all of which must match, "
    "each key once (a repeated one is a 400). A VALUE matches the string VALUE, and also the number it "
    'writes if it is a JSON number (`metadata.n=5` and `metadata.n=5.0` find 5, 5.0 and "5", not '
    '"05") and the boolean if it is `true` or `false`. Keys follow the metadata rule (1-64 characters '
    "of `A-Z a-z 0-9 _ - . :`; any other is a 400). Combines with `title`, `visibility` and both kinds "
    "of pages. (One parameter per key cannot be declared by name in OpenAPI, so it is described here.)"
)


def metadata_filters(query: QueryDict) -> dict[str, str]:
    """The list's metadata filters in a query string, `metadata.KEY=VALUE`, as {KEY: VALUE}.

    A 400 names each bad parameter: a key the metadata rule refuses, a value no stored string could
    equal, a key given twice (`repeated`, as `api.params.one_value_each` answers for the list's other
    parameters), more than METADATA_FILTERS_MAX of them, or `metadata` alone.
    """
    errors: dict[str, list[ErrorDetail]] = {}
    filters: dict[str, str] = {}
    names = [name for name in query if name.startswith(METADATA_FILTER_PREFIX)]
    if "metadata" in query:
        errors["metadata"] = [
            ErrorDetail("Filter by metadata with one `metadata.KEY=VALUE` per key.", code="invalid")
        ]
    if len(names) > METADATA_FILTERS_MAX:
        errors["metadata"] = [
            ErrorDetail(
                f"At most {METADATA_FILTERS_MAX} metadata filters; this asks {len(names)}.", code="too_many"
            )
        ]
    for name in names:
        values = query.getlist(name)
        key = name.removeprefix(METADATA_FILTER_PREFIX)
        if len(values) > 1:
            errors[name] = [ErrorDetail("Given more than once; send it once.", code="repeated")]
            continue
        try:
            filters[validate_key(key)] = validate_filter_value(key, values[0])
        except InvalidMetadata as exc:
            errors[name] = [ErrorDetail(exc.message, code=exc.code)]
    if errors:
        raise ValidationError(errors)
    return filters


class RenditionInputSerializer(serializers.Serializer):
    width = WholeNumberField(
        required=False,
        min_value=1,
        max_value=settings.IMAGE_MAX_DIMENSION,
        help_text=(
            "Scale to this width, keeping the aspect ratio. Rounded up to the next step of the ladder "
            f"({LADDER[0]}, {LADDER[1]}, {LADDER[2]}, … {LADDER[-1]}, about 15 % apart), never larger than "
            "the stored image (asking more gives its stored width). Not with `height` or `preset`."
        ),
    )
    height = WholeNumberField(
        required=False,
        min_value=1,
        max_value=settings.IMAGE_MAX_DIMENSION,
        help_text="As `width`, for the height. Not with `width` or `preset`.",
    )
    # Its choices are the configured presets, read again for every request and schema (`get_fields`).
    preset = serializers.ChoiceField(
        choices=[],
        required=False,
        help_text=(
            "A named variant from the server's `IMAGE_PRESETS` (defaults: `thumb` 200x200 cropped to "
            "fill, `small` 480 wide, `large` 1600 wide), never larger than the stored image; the only way "
            "to ask for a crop (placed by the preset's gravity, or the image's focal point). The image "
            "object's `presets` lists them. Not with `width` or `height`."
        ),
    )
    focal = serializers.RegexField(
        _FOCAL_TAG,
        required=False,
        help_text=(
            "The image's focal point as `x,y`, which the object's preset URLs of crops carry so that a new "
            "focal point is a new URL for every cache. It does not place the crop (the image's own focal "
            "point does): an old one is answered with the current crop."
        ),
    )
    format = serializers.ChoiceField(
        choices=[f.value for f in RenditionFormat],
        required=False,
        help_text=(
            "`auto` (the default, with any other parameter) picks by the `Accept` header: AVIF when it "
            "names `image/avif` (stored JPEG and AVIF images, renditions up to "
            "IMAGE_RENDITION_AUTO_AVIF_MAX_PIXELS), else WebP when it "
            "names `image/webp`, else JPEG for a JPEG and PNG (GIF for a GIF) where transparency or an "
            "animation may be; the answer then has `Vary: Accept`. An animation stays animated in WebP "
            "and PNG (APNG) and is its first frame in JPEG and AVIF."
        ),
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # The schema's enum and the check are the presets of IMAGE_PRESETS as they are now.
        names = sorted(configured_presets())
        if not names:
            # No preset to name: no parameter in the schema (an empty enum is no valid schema), and
            # `validate` refuses one.
            del fields["preset"]
            return fields
        preset = fields["preset"]
        assert isinstance(preset, serializers.ChoiceField)
        preset.choices = names
        known = ", ".join(names) or "none"
        preset.error_messages["invalid_choice"] = f"No preset named {{input!r}} (this server has: {known})."
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "preset" not in self.fields and "preset" in getattr(self, "initial_data", {}):
            raise serializers.ValidationError({"preset": "No preset named that (this server has none)."})
        if "width" in attrs and "height" in attrs:
            raise serializers.ValidationError(
                {"height": "Give width or height, not both: the other follows the aspect ratio."}
            )
        if "preset" in attrs and ("width" in attrs or "height" in attrs):
            raise serializers.ValidationError(
                {"preset": "A preset sets the size itself: not with width or height."}
            )
        return attrs


def rendition_query(query: QueryDict) -> dict[str, Any]:
    """The rendition parameters of a query string, as RenditionInputSerializer validates them.

    The shapes every page asks for (`width=320`, `height=…` or `preset=small`, with or without `format`,
    each once, nothing else) are read here without building the serializer, whose fields DRF deep-copies
    for every instance: about a fifth of the app's work for a stored rendition. Anything else, and so
    every error, goes through the serializer: the 400s are its own. What is read here is exactly what
    it accepts for those shapes (tests/test_params.py compares the two).
    """
    common = _common_rendition_query(query)
    if common is not None:
        return common
    params = RenditionInputSerializer(data=one_value_each(query, RenditionInputSerializer))
    params.is_valid(raise_exception=True)
    return dict(params.validated_data)


# The serializer's own bound, read when it was defined (its fields keep that value).
_FOCAL_TAG_PATTERN = re.compile(_FOCAL_TAG)
_MAX_SIDE = settings.IMAGE_MAX_DIMENSION
_FORMATS = frozenset(f.value for f in RenditionFormat)
_PLAIN_SIDE = re.compile(r"[1-9][0-9]{0,5}")


def _known_value(name: str, value: str) -> bool:
    """A `format`, `preset` or `focal` value the serializer accepts as it is."""
    if name == "focal":
        return _FOCAL_TAG_PATTERN.fullmatch(value) is not None
    return value in (_FORMATS if name == "format" else configured_presets() if name == "preset" else ())


def _common_rendition_query(query: QueryDict) -> dict[str, Any] | None:
    """The common shapes' parameters, or None for the serializer to read (and judge) the query."""
    if len(query) > 2:
        return None
    found: dict[str, Any] = {}
    for name, values in query.lists():
        if len(values) != 1:
            return None
        value = values[0]
        if name in ("width", "height"):
            if not _PLAIN_SIDE.fullmatch(value) or int(value) > _MAX_SIDE:
                return None
            found[name] = int(value)
        elif _known_value(name, value):
            found[name] = value
        else:
            return None
    if len(found.keys() & {"width", "height", "preset"}) > 1:
        return None
    return found
