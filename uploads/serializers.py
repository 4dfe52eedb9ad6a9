"""The upload URLs' serializers: minting one (what it fixes, its size limit and lifetime), the upload to it
(the fields of POST /images that the URL left open) and the upload URL object."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import empty

from api.params import WholeNumberField
from api.schema import CLOSED
from images.serializers import (
    METADATA_RULE,
    FocalSerializer,
    ImageCreateInputSerializer,
    ImageOutputSerializer,
    MetadataField,
)
from uploads.models import UploadState

# How long an upload URL lives unless the minting request says otherwise: 30 minutes.
DEFAULT_EXPIRES_IN = 1800


@extend_schema_serializer(component_name="UploadUrlCreate", extensions={CLOSED: True})
class DirectUploadCreateInputSerializer(ImageCreateInputSerializer):
    """What an upload URL fixes of its image: POST /images's fields, validated the same way (they are
    inherited), without the file. What it leaves out the uploader may send. Any other field is a 400."""

    image = None  # the uploader's
    on_duplicate = None  # an upload URL always makes its own image
    # In a JSON body, the object itself (POST /images's form takes their JSON text).
    metadata = MetadataField(
        required=False,
        help_text="The app's own data for the image, a JSON object. " + METADATA_RULE,
    )
    focal = FocalSerializer(
        required=False,
        help_text='The image\'s focal point (`{"x": 0.3, "y": 0.25}`, fractions of the uploaded picture).',
    )
    max_bytes = WholeNumberField(
        required=False,
        min_value=1,
        max_value=settings.IMAGE_MAX_UPLOAD_BYTES,
        help_text="The largest file the URL takes, in bytes. Default and most: the server's upload limit.",
    )
    expires_in = WholeNumberField(
        required=False,
        min_value=1,
        max_value=settings.UPLOAD_URL_MAX_TTL,
        help_text=(
            f"Seconds the URL stays usable. Default {DEFAULT_EXPIRES_IN} (30 minutes, or the most); at most "
            f"{settings.UPLOAD_URL_MAX_TTL} (`UPLOAD_URL_MAX_TTL`)."
        ),
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # An upload defaults to `contain`; a URL that does not name a fit leaves it to the uploader.
        fields["fit"].default = empty
        fields["fit"].required = False
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise ValidationError({name: ["Not a field of an upload URL."] for name in unknown})
        value = super().to_internal_value(data)
        if not value.get("title"):
            value.pop("title", None)  # empty: the uploader's file name, as for POST /images
        if "focal" in value:
            x, y = value["focal"]
            value["focal"] = {"x": x, "y": y}  # kept (and answered in `fixed`) as the object's `focal` is
        value.setdefault("max_bytes", settings.IMAGE_MAX_UPLOAD_BYTES)
        value.setdefault("expires_in", min(DEFAULT_EXPIRES_IN, settings.UPLOAD_URL_MAX_TTL))
        return value

    def validate_max_bytes(self, value: int) -> int:
        # The setting as it is now (the field's bound, in the schema, is read once at start).
        if value > settings.IMAGE_MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"Ensure this value is less than or equal to {settings.IMAGE_MAX_UPLOAD_BYTES}."
            )
        return value

    def validate_expires_in(self, value: int) -> int:
        if value > settings.UPLOAD_URL_MAX_TTL:
            raise ValidationError(
                f"Ensure this value is less than or equal to {settings.UPLOAD_URL_MAX_TTL}."
            )
        return value


class DirectUploadInputSerializer(ImageCreateInputSerializer):
    """The upload to a URL: POST /images's fields, less those the URL fixed (`context["fixed"]`), which the
    uploader cannot change: sending one is a 400 naming it. Its schema is POST /images's (`ImageUpload`)."""

    on_duplicate = None  # an upload URL always makes its own image

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name in self.context.get("fixed", ()):
            if name != "image":
                fields.pop(name, None)
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        fixed = self.context.get("fixed", {})
        sent = [name for name in fixed if name != "image" and data.get(name) not in (None, "")]
        if sent:
            raise ValidationError({name: ["Fixed by the upload URL; leave it out."] for name in sent})
        return super().to_internal_value(data)


@extend_schema_serializer(component_name="UploadUrl")
class DirectUploadOutputSerializer(serializers.Serializer):
    """An upload URL: its state and, once used, its image. Never its secret (only minting answers it)."""

    id = serializers.UUIDField(read_only=True)
    state = serializers.ChoiceField(
        choices=UploadState.choices,
        read_only=True,
        help_text=(
            "`pending`: waiting for its upload. `completed`: the image is made (`image`). `expired`: its "
            "time ran out before; it takes no upload."
        ),
    )
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    max_bytes = serializers.IntegerField(read_only=True, help_text="The largest file it takes, in bytes.")
    fixed = serializers.DictField(
        read_only=True,
        help_text="What it fixed of the image (`title`, `width`, `height`, `fit`, `format`, `visibility`, "
        "`metadata`); the uploader chose the rest.",
    )
    image = ImageOutputSerializer(
        read_only=True, allow_null=True, help_text="The image it made; null until then (or once deleted)."
    )


@extend_schema_serializer(component_name="UploadUrlCreated")
class DirectUploadCreatedSerializer(DirectUploadOutputSerializer):
    upload_url = serializers.SerializerMethodField(
        help_text=(
            "Where the file goes: `POST` one multipart `image` to it, with no API key (from a browser too, "
            "on `CORS_ALLOWED_ORIGINS`). Its secret part is answered only here: keep it like a password "
            "until it is used."
        )
    )

    def get_upload_url(self, upload: Any) -> str:
        return str(self.context["upload_url"])
