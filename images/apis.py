"""HTTP endpoints for images: parse the request, call one service or selector, serialize the answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.conditional import conditional
from api.pagination import ListPagination
from api.schema import problem_responses
from images.filters import ImageFilter
from images.models import Image
from images.processing import Fit, OutputFormat
from images.selectors import ListCount, image_get, image_list, image_list_count, image_list_slice
from images.services import image_create
from images.titles import TITLE_MAX_LENGTH


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
    title = serializers.CharField(
        required=False,
        max_length=TITLE_MAX_LENGTH,
        help_text=(
            "1-255 characters after trimming. Default (also for an empty field): the file name "
            "without its extension."
        ),
    )
    width = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.IMAGE_MAX_DIMENSION,
        help_text="Target width in pixels. Alone, the height follows the aspect ratio.",
    )
    height = serializers.IntegerField(
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
            "ratio, `cover` scales and centre-crops to exactly the box, `fill` stretches to exactly "
            "the box. With only one of width/height the other follows the aspect ratio."
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


@extend_schema_serializer(component_name="Image")
class ImageOutputSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Absolute URL of the stored file.")

    class Meta:
        model = Image
        fields = ["id", "url", "title", "width", "height", "format", "size", "created_at"]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, image: Image) -> str:
        return self.context["request"].build_absolute_uri(image.file.url)

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
        }


_DATETIME = serializers.DateTimeField()


IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="The `ETag` of a copy you have: answered `304 Not Modified` (no body) while it is current.",
)


class ImagePagination(ListPagination):
    """The whole list's count comes from a counter; a filtered page's query is planned by its count."""

    def count_rows(self, queryset: QuerySet[Image]) -> tuple[int, bool]:
        count = image_list_count(queryset, cap=self.count_cap)
        return count.value, count.exact

    def fetch_rows(
        self, queryset: QuerySet[Image], start: int, stop: int, *, count: tuple[int, bool]
    ) -> list[Image]:
        return image_list_slice(queryset, start=start, stop=stop, count=ListCount(*count))


class ImageCollectionApi(GenericAPIView):
    parser_classes = [MultiPartParser, FormParser]
    pagination_class = ImagePagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ImageFilter
    serializer_class = ImageOutputSerializer

    def get_queryset(self):
        return image_list()

    @extend_schema(
        operation_id="images_list",
        summary="List images",
        description=(
            "Newest first (id breaks ties), so walking the pages sees every image once. Numbered pages "
            "(`page`) by default; `cursor=` switches to keyset pages, which cost the same at any depth. "
            "The answer has an `ETag`; `If-None-Match` with it answers 304."
        ),
        responses={
            200: ImageOutputSerializer(many=True),
            304: OpenApiResponse(description="Not modified: the page still has the ETag sent."),
            **problem_responses(400, 401, 404, 429),
        },
        parameters=[IF_NONE_MATCH],
    )
    def get(self, request: Request) -> Response:
        images = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        page = self.get_paginated_response(self.get_serializer(images, many=True).data)
        return conditional(request, page)

    @extend_schema(
        operation_id="images_create",
        summary="Upload an image",
        description=(
            "Resizes, orients (EXIF) and re-encodes the image, stores it and answers the new object. "
            "JPEG, PNG, GIF and WebP keep their format unless `format` says otherwise; other formats "
            "become PNG when they have transparency, else JPEG, and an animated AVIF becomes an animated "
            "WebP. Animated GIF, WebP and PNG stay animated (stored as `jpeg` or `avif`: the first frame). "
            "No metadata (EXIF, XMP, GPS, comments) is kept; colours are converted to sRGB."
        ),
        request={"multipart/form-data": ImageCreateInputSerializer},
        responses={
            201: ImageOutputSerializer,
            **problem_responses(400, 401, 413, 415, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        params = ImageCreateInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["image"]
        image = image_create(
            upload=upload,
            filename=upload.name,
            title=params.validated_data.get("title"),
            width=params.validated_data.get("width"),
            height=params.validated_data.get("height"),
            fit=Fit(params.validated_data["fit"]),
            output_format=OutputFormat(fmt) if (fmt := params.validated_data.get("format")) else None,
            api_key=request.auth,
        )
        return Response(
            self.get_serializer(image).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("image-detail", kwargs={"image_id": image.pk})},
        )


class ImageDetailApi(GenericAPIView):
    serializer_class = ImageOutputSerializer

    @extend_schema(
        operation_id="images_retrieve",
        summary="Get one image",
        description="The answer has an `ETag`; `If-None-Match` with it answers 304.",
        responses={
            200: ImageOutputSerializer,
            304: OpenApiResponse(description="Not modified: the image still has the ETag sent."),
            **problem_responses(401, 404, 429),
        },
        parameters=[IF_NONE_MATCH],
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = image_get(image_id=image_id)
        return conditional(request, Response(self.get_serializer(image).data))
