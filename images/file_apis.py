"""GET /images/{id}/file: the image's bytes, as stored or as a rendition (a size, a preset, a format).

Parse the query (one input serializer), resolve it against the row (images/renditions.py), answer 304 from
the ETag alone, else stream the stored rendition, or render it first (never for HEAD): a first render is
charged what it costs to the render budgets. The answer is cached forever: its URL (and Accept, for
`format=auto`) says what it is.
"""

from __future__ import annotations

from typing import Any

from django.http import (
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotModified,
    StreamingHttpResponse,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from api.conditional import if_none_match_matches
from api.params import one_value_each
from api.schema import problem_responses
from api.throttling import render_budget_reserve
from images.file_access import SignedOrImageryAccess, may_ask_unsigned, signed_access, unsigned_access
from images.files import FILE_HEADERS
from images.models import Image
from images.renditions import (
    RenditionFormat,
    Source,
    rendition_cost,
    rendition_create,
    rendition_open,
    resolve,
)
from images.selectors import image_file_get
from images.sending import stored_file_response
from images.serializers import RenditionInputSerializer, rendition_query
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
            "immutable`; `private` instead where reads need an API key, `IMAGERY_AUTH=all`), with an "
            "`ETag` (`If-None-Match` answers 304); `format=auto` answers with "
            "`Vary: Accept`. A private image's: only with a signature (or its owner's key), cached "
            "privately until the signature expires; 404 without. `HEAD` answers the headers alone and never "
            "renders: for a rendition not rendered yet it has no `Content-Length`. A first render is charged "
            "what it costs (CPU seconds, bytes stored) to the render budgets of the key and the address, "
            "`THROTTLE_RENDER_*` (429 past one; 413 when one render alone would cost more than a whole "
            "budget)."
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
        query = one_value_each(request.query_params, RenditionInputSerializer)
        if is_signed(query):
            # Verified before the row is read: a bad signature is the same 403 for any id.
            signed = RenditionInputSerializer(data=query)
            params = dict(signed.validated_data) if signed.is_valid() else None
            cache_control = signed_access(image_id, params, query)
            assert params is not None  # signed_access refused it otherwise
            image = image_file_get(image_id=image_id)
        else:
            image = image_file_get(image_id=image_id)
            if not may_ask_unsigned(image, query, request.auth):
                # Before the parameters are checked: a 400 would tell that the image exists.
                raise Image.DoesNotExist
            params = rendition_query(request.query_params)
            cache_control = unsigned_access(image, params, request.auth)
        source = Source(
            name=image.name, width=image.width, height=image.height, format=image.format, focal=image.focal
        )
        spec = resolve(
            source,
            width=params.get("width"),
            height=params.get("height"),
            preset=params.get("preset"),
            output_format=RenditionFormat(fmt) if (fmt := params.get("format")) else None,
            accept=request.headers.get("Accept", ""),
        )
        headers = {**FILE_HEADERS, "Cache-Control": cache_control, "ETag": spec.etag(source)}
        if spec.negotiated:
            headers["Vary"] = "Accept"
        if if_none_match_matches(request.headers.get("If-None-Match", ""), headers["ETag"]):
            return _with(HttpResponseNotModified(), headers)

        extension = spec.output.extension
        headers["Content-Disposition"] = f'inline; filename="{image_id}-{spec.key}.{extension}"'
        content_type = spec.output.media_type
        head = request.method == "HEAD"
        served = rendition_open(source, spec, fetch=not head)
        if served is None and head:
            # HEAD never renders: it costs what a read costs, so walking every size and format with HEAD
            # makes no work. The headers a GET would have, but no Content-Length: its length is not known
            # until it is rendered. (Streaming, so that CommonMiddleware does not add a length of 0.)
            return _with(StreamingHttpResponse((), content_type=content_type), headers)
        if served is None:
            # Work, not a read: charged by its cost to the render budgets of the client's key and address, so
            # a client walking every size and format of every image is held back here.
            charge = render_budget_reserve(request, rendition_cost(source, spec))
            served = rendition_create(source, spec, charge=charge)
        response: HttpResponse
        if head:
            if served.file is not None:
                served.file.close()
            response = HttpResponse(content_type=content_type)
        elif served.file is not None:
            name = spec.name(source)
            response = stored_file_response(
                served.file, name=name, content_type=content_type, size=served.size
            )
        else:
            response = HttpResponse(served.data, content_type=content_type)
        response.setdefault("Content-Length", str(served.size))
        extension = spec.output.extension
        response["Content-Disposition"] = f'inline; filename="{image_id}-{spec.key}.{extension}"'
        return _with(response, headers)


def _with(response: HttpResponseBase, headers: dict[str, str]) -> HttpResponseBase:
    for key, value in headers.items():
        response[key] = value
    return response
