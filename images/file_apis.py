"""GET /images/{id}/file: the image's bytes, as stored or as a rendition (a size, a preset, a format).

Parse the query (one input serializer), resolve it against the row (images/renditions.py), answer 304 from
the ETag alone, else stream the stored rendition, or render it first: a first render counts against the
render rate limits. The answer is cached forever: its URL (and Accept, for `format=auto`) says what it is.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponse, HttpResponseBase, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from api.conditional import if_none_match_matches
from api.params import last_values
from api.schema import problem_responses
from api.throttling import check_render_throttles
from images.file_access import SignedOrImageryAccess, may_ask_unsigned, signed_access, unsigned_access
from images.files import FILE_HEADERS
from images.models import Image
from images.renditions import (
    RenditionFormat,
    Source,
    rendition_create,
    rendition_open,
    resolve,
)
from images.selectors import image_file_get
from images.serializers import RenditionInputSerializer
from images.signing import is_signed

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif")


class ImageFileApi(APIView):
    """The bytes of one image: its stored file, or a rendition of it (who may: images/file_access.py)."""

    permission_classes = [SignedOrImageryAccess]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # Accept chooses the image's format here (`format=auto`), never the error format: errors are JSON
        # problems whatever it says, so `Accept: image/avif` alone is no 406.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="images_file",
        summary="Get an image's file, or a rendition of it",
        description=(
            "Without parameters: the stored file, the same bytes as the object's `url`. With `width`, "
            "`height` or `preset`, and/or `format`: a rendition, rendered on its first request and stored, "
            "then served from storage. Cached forever (`Cache-Control: public, max-age=31536000, "
            "immutable`), with an `ETag` (`If-None-Match` answers 304); `format=auto` answers with "
            "`Vary: Accept`. A private image's: only with a signature (or its owner's key), cached "
            "privately until the signature expires; 404 without. `HEAD` answers the headers alone. A first "
            "render counts against `THROTTLE_RENDERS_PER_KEY` and `THROTTLE_RENDERS_PER_ADDRESS` (429 past "
            "them)."
        ),
        parameters=[
            RenditionInputSerializer,
            OpenApiParameter(
                "expires",
                int,
                description="A signed URL's expiry (Unix seconds), with `kid` and `sig`.",
            ),
            OpenApiParameter("kid", str, description="The id of the key a signed URL was signed with."),
            OpenApiParameter(
                "sig",
                str,
                description=(
                    "A signed URL's signature (HMAC-SHA256, base64url): the URLs of a private image's object "
                    "are signed (README, Private images and signed URLs). Expired: 403 `expired`; altered: "
                    "403 `invalid`."
                ),
            ),
            OpenApiParameter(
                "Accept",
                str,
                OpenApiParameter.HEADER,
                description="With `format=auto`: `image/avif` and `image/webp` choose those formats.",
            ),
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                description="The `ETag` of a copy you have: answered `304 Not Modified` (no body).",
            ),
        ],
        responses={
            **{
                (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The image's bytes.")
                for media_type in _IMAGE_TYPES
            },
            304: OpenApiResponse(description="Not modified: the copy with the ETag sent is current."),
            **problem_responses(400, 401, 403, 404, 413, 429, 503),
        },
    )
    def get(self, request: Request, image_id: int) -> HttpResponseBase:
        query = last_values(request.query_params)
        params = RenditionInputSerializer(data=query)
        if is_signed(query):
            # Verified before the row is read: a bad signature is the same 403 for any id.
            cache_control = signed_access(
                image_id, params.validated_data if params.is_valid() else None, query
            )
            image = image_file_get(image_id=image_id)
        else:
            image = image_file_get(image_id=image_id)
            if not may_ask_unsigned(image, query, request.auth):
                # Before the parameters are checked: a 400 would tell that the image exists.
                raise Image.DoesNotExist
            params.is_valid(raise_exception=True)
            cache_control = unsigned_access(image, params.validated_data, request.auth)
        source = Source(name=image.name, width=image.width, height=image.height, format=image.format)
        spec = resolve(
            source,
            width=params.validated_data.get("width"),
            height=params.validated_data.get("height"),
            preset=params.validated_data.get("preset"),
            output_format=RenditionFormat(fmt) if (fmt := params.validated_data.get("format")) else None,
            accept=request.headers.get("Accept", ""),
        )
        headers = {**FILE_HEADERS, "Cache-Control": cache_control, "ETag": spec.etag(source)}
        if spec.negotiated:
            headers["Vary"] = "Accept"
        if if_none_match_matches(request.headers.get("If-None-Match", ""), headers["ETag"]):
            return _with(HttpResponseNotModified(), headers)

        served = rendition_open(source, spec)
        if served is None:
            # Work, not a read: a client walking every size and format of every image is held back here.
            check_render_throttles(request, self)
            served = rendition_create(source, spec)
        content_type = spec.output.media_type
        response: HttpResponse
        if request.method == "HEAD":
            if served.file is not None:
                served.file.close()
            response = HttpResponse(content_type=content_type)
        elif served.file is not None:
            response = FileResponse(served.file, content_type=content_type)
        else:
            response = HttpResponse(served.data, content_type=content_type)
        response["Content-Length"] = str(served.size)
        extension = spec.output.extension
        response["Content-Disposition"] = f'inline; filename="{image_id}-{spec.key}.{extension}"'
        return _with(response, headers)


def _with(response: HttpResponseBase, headers: dict[str, str]) -> HttpResponseBase:
    for key, value in headers.items():
        response[key] = value
    return response
