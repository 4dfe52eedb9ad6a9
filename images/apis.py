"""HTTP endpoints for images: parse the request, call one service or selector, serialize the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from api.auth import ImageryAccess, is_admin
from api.conditional import conditional, if_match_matches
from api.pagination import (
    cursor_page,
    cursor_position,
    numbered_page,
    page_offset,
)
from api.params import one_value_each
from api.parsers import JSONParser
from api.schema import page_of, problem_responses
from api.throttling import CostlyReadsPerAddress, CostlyReadsPerKey
from images.formats import Fit, Gravity, OutputFormat
from images.models import Image, Visibility
from images.permissions import MayChangeImage
from images.selectors import image_get_visible, image_list, image_list_page, image_similar_page
from images.serializers import (
    METADATA_FILTER_HELP,
    ImageCreateInputSerializer,
    ImageListInputSerializer,
    ImageOutputSerializer,
    ImageUpdateInputSerializer,
    answers_signed_urls,
    image_etag,
    metadata_filters,
)
from images.services import UNCHANGED, OnDuplicate, image_delete, image_update, image_upload

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description=(
        "The `ETag` of the version you change (or `*`: any): if the image has changed since, nothing is "
        "changed and the answer is `412 Precondition Failed`. A weak tag (`W/…`) never matches."
    ),
)


def if_match_precondition(request: Request) -> Callable[[Image], bool] | None:
    """What the request's `If-Match` asks of the image as it is when changed; None without one."""
    if_match = request.headers.get("If-Match", "").strip() or None  # an empty one names nothing
    if if_match is None:
        return None
    return lambda image: if_match_matches(if_match, image_etag(image))


def list_scope(request: Request, visibility: str) -> tuple[str, str | None]:
    """Which images a list shows the caller: the public ones, or private ones (`visibility=private`):
    the caller's key's own, or every one for an admin key (owner None). Without a key, a 401."""
    if visibility != Visibility.PRIVATE:
        return visibility, None
    key = request.auth
    if key is None:
        raise NotAuthenticated("Private images are listed for the API key that uploaded them: send it.")
    return visibility, None if is_admin(key) else key.pk


IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="The `ETag` of a copy you have: answered `304 Not Modified` (no body) while it is current.",
)


class ImageCollectionApi(GenericAPIView):
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = ImageOutputSerializer

    def get_throttles(self) -> list[BaseThrottle]:
        throttles = super().get_throttles()
        if self.request.method == "GET" and "similar_to" in self.request.query_params:
            # A search of every hash (up to 141 ms at D = 16 on 1M rows) is no ordinary read.
            throttles += [CostlyReadsPerKey(), CostlyReadsPerAddress()]
        return throttles

    @extend_schema(
        operation_id="images_list",
        summary="List images",
        description=(
            "Newest first (id breaks ties), so walking the pages sees every image once. Numbered pages "
            "(`page`) by default; `cursor=` switches to keyset pages, which cost the same at any depth. "
            "`similar_to` (with `distance`) lists the images that look like one instead, nearest first. "
            "The answer has an `ETag`; `If-None-Match` with it answers 304.\n\n" + METADATA_FILTER_HELP
        ),
        responses={
            200: page_of(ImageOutputSerializer, component_name="PaginatedImageList"),
            304: OpenApiResponse(description="Not modified: the page still has the ETag sent."),
            **problem_responses(400, 401, 404, 429),
        },
        parameters=[ImageListInputSerializer, IF_NONE_MATCH],
    )
    def get(self, request: Request) -> Response:
        params = ImageListInputSerializer(data=one_value_each(request.query_params, ImageListInputSerializer))
        params.is_valid(raise_exception=True)
        metadata = metadata_filters(request.query_params) or None
        title, size = params.validated_data.get("title") or None, params.validated_data["page_size"]
        visibility, owner_id = list_scope(request, params.validated_data["visibility"])
        if "cursor" in params.validated_data:
            position = cursor_position(params.validated_data["cursor"])
            images = image_list(title=title, metadata=metadata, visibility=visibility, owner_id=owner_id)
            page = cursor_page(request, images, position=position, size=size)
        else:
            number = params.validated_data["page"]
            start = page_offset(number, size)
            # One row more than the page says whether another page follows, whatever the count says.
            rows: dict[str, Any] = {"start": start, "stop": start + size + 1}
            scope = {"title": title, "metadata": metadata, "visibility": visibility, "owner_id": owner_id}
            if "similar_to" in params.validated_data:
                # The image measured from must be one the caller may see (else a 404, as for its detail).
                origin = image_get_visible(image_id=params.validated_data["similar_to"], key=request.auth)
                distance = params.validated_data["distance"]
                found = image_similar_page(image=origin, distance=distance, **scope, **rows)
            else:
                found = image_list_page(**scope, **rows, count_cap=settings.LIST_COUNT_CAP)
            page = numbered_page(
                request, found.items, number=number, size=size, count=found.count, exact=found.exact
            )
        results = self.get_serializer(page.rows, many=True).data
        return conditional(request, Response(page.body(results)))

    @extend_schema(
        operation_id="images_create",
        summary="Upload an image",
        description=(
            "Resizes, orients (EXIF) and re-encodes the image, stores it and answers the new object. "
            "JPEG, PNG, GIF and WebP keep their format unless `format` says otherwise; other formats "
            "become PNG when they have transparency, else JPEG, and an animated AVIF becomes an animated "
            "WebP. Animated GIF, WebP and PNG stay animated (stored as `jpeg` or `avif`: the first frame). "
            "No metadata of the file (EXIF, XMP, GPS, comments) is kept; colours are converted to sRGB. "
            "`metadata` is the app's own data on the image, returned in every object and filterable in the "
            "list (`metadata.KEY=VALUE`)."
        ),
        request={"multipart/form-data": ImageCreateInputSerializer},
        responses={
            201: ImageOutputSerializer,
            200: OpenApiResponse(
                ImageOutputSerializer,
                description=(
                    "`on_duplicate=reuse` and you uploaded this stored file before: nothing was made; the "
                    "older image."
                ),
            ),
            **problem_responses(400, 401, 413, 415, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        params = ImageCreateInputSerializer(data=one_value_each(request.data, ImageCreateInputSerializer))
        params.is_valid(raise_exception=True)
        upload = params.validated_data["image"]
        uploaded = image_upload(
            upload=upload,
            filename=upload.name,
            title=params.validated_data.get("title"),
            width=params.validated_data.get("width"),
            height=params.validated_data.get("height"),
            fit=Fit(params.validated_data["fit"]),
            gravity=Gravity(params.validated_data.get("gravity", settings.IMAGE_DEFAULT_GRAVITY)),
            focal=params.validated_data.get("focal"),
            output_format=OutputFormat(fmt) if (fmt := params.validated_data.get("format")) else None,
            visibility=params.validated_data.get("visibility", settings.IMAGE_DEFAULT_VISIBILITY),
            api_key=request.auth,
            metadata=params.validated_data.get("metadata"),
            on_duplicate=OnDuplicate(params.validated_data["on_duplicate"]),
        )
        image = uploaded.image
        body = self.get_serializer(image).data
        if not uploaded.created:
            return Response(body, status=status.HTTP_200_OK)
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("image-detail", kwargs={"image_id": image.pk})},
        )


class ImageDetailApi(GenericAPIView):
    serializer_class = ImageOutputSerializer
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    permission_classes = [ImageryAccess, MayChangeImage]

    @extend_schema(
        operation_id="images_retrieve",
        summary="Get one image",
        description=(
            "The answer has an `ETag`; `If-None-Match` with it answers 304, except for an object with signed "
            "URLs (a private image's), which is answered whole with fresh ones."
        ),
        responses={
            200: ImageOutputSerializer,
            304: OpenApiResponse(description="Not modified: the image still has the ETag sent."),
            **problem_responses(401, 404, 429),
        },
        parameters=[IF_NONE_MATCH],
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = image_get_visible(image_id=image_id, key=request.auth)
        response = Response(self.get_serializer(image).data)
        if answers_signed_urls(image):
            # A 304 would keep a copy whose signed URLs expire: the object again, with fresh ones. The ETag
            # (the version's) still serves If-Match.
            response["ETag"] = image_etag(image)
            return response
        return conditional(request, response, etag=image_etag(image))

    @extend_schema(
        operation_id="images_update",
        summary="Change an image's title, visibility, metadata or focal point",
        description=(
            "Only `title`, `visibility`, `metadata` and `focal` can be changed (the pixels never change: "
            "upload again for that); any other field is a 400 naming it. `metadata` replaces the whole "
            "object (keys left out are removed, `{}` empties it), as Cloudflare Images' update does. A "
            "change of visibility moves the stored file (and drops its renditions, made again on demand); a "
            "private image's URLs are signed. A new focal point drops the crops made around the old one, and "
            "changes the preset URLs of crops. Send the image's "
            "`ETag` in `If-Match` to change it only if nobody else has since (`412` otherwise). With "
            "`IMAGERY_AUTH=write` or `all`, only the API key that uploaded the image or an admin key may."
        ),
        # JSON only: the view parses forms too, but a client generated from a schema that offers three
        # bodies sends the one it likes least (openapi-python-client: multipart, the title twice).
        request={"application/json": ImageUpdateInputSerializer},
        responses={200: ImageOutputSerializer, **problem_responses(400, 401, 403, 404, 412, 429, 503)},
        parameters=[IF_MATCH],
    )
    def patch(self, request: Request, image_id: int) -> Response:
        params = ImageUpdateInputSerializer(data=one_value_each(request.data, ImageUpdateInputSerializer))
        params.is_valid(raise_exception=True)
        self.check_object_permissions(request, image_get_visible(image_id=image_id, key=request.auth))
        data = params.validated_data
        image = image_update(
            image_id=image_id,
            title=data.get("title"),
            visibility=data.get("visibility"),
            focal=data.get("focal", UNCHANGED),
            metadata=data.get("metadata"),
            precondition=if_match_precondition(request),
            api_key=request.auth,
        )
        return Response(self.get_serializer(image).data, headers={"ETag": image_etag(image)})

    @extend_schema(
        operation_id="images_destroy",
        summary="Delete an image",
        description=(
            "Deletes the image; its stored file goes too unless an identical upload still uses it. Its "
            "URLs may still be served from caches (a CDN, a browser) until they expire: they are cached "
            "as immutable for a year. Send the image's `ETag` in `If-Match` to delete it only if nobody "
            "has changed it since (`412` otherwise). With `IMAGERY_AUTH=write` or `all`, only the API key "
            "that uploaded the image or an admin key may."
        ),
        responses={
            204: OpenApiResponse(description="Deleted."),
            **problem_responses(401, 403, 404, 412, 429, 503),
        },
        parameters=[IF_MATCH],
    )
    def delete(self, request: Request, image_id: int) -> Response:
        image = image_get_visible(image_id=image_id, key=request.auth)
        self.check_object_permissions(request, image)
        image_delete(image=image, precondition=if_match_precondition(request), api_key=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)
