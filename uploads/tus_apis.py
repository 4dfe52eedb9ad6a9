"""tus 1.0 on the upload URL (`/uploads/{id}/{secret}`): discovery, creation, offset, append, termination.

The upload URL is both the tus creation endpoint and the upload's resource (the `Location` a creation
answers is the same URL: it carries the secret, and a tus client sends no key). `TusUploadMixin` gives
the upload URL's view its OPTIONS, HEAD, PATCH and DELETE, and `tus_create` for a POST that speaks tus.
Headers are parsed by uploads/tus.py, the work is uploads/resumable.py's; every answer, errors included,
carries `Tus-Resumable: 1.0.0`.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.cache import patch_cache_control
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from api.schema import problem_responses
from api.throttling import ChunksPerAddress
from uploads import tus
from uploads.exceptions import UploadNotFound
from uploads.models import DirectUpload
from uploads.resumable import (
    Appended,
    Chunk,
    tus_upload_append,
    tus_upload_create,
    tus_upload_limit,
    tus_upload_terminate,
)
from uploads.selectors import direct_upload_by_secret
from uploads.serializers import DirectUploadInputSerializer
from uploads.services import direct_upload_check_open

# The fields of POST /images an Upload-Metadata may choose (those the URL left open), and the file name.
METADATA_FIELDS = ("title", "width", "height", "fit", "format", "visibility")
FILENAME_KEYS = ("filename", "name")  # tus-js-client's examples say `filename`, Uppy sends `name` too


class TusMetadataSerializer(DirectUploadInputSerializer):
    """Upload-Metadata's choices, validated as the one-shot upload's fields (no file: it comes in chunks)."""

    image = None


def tus_chosen(upload: DirectUpload, metadata: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
    """The file name and the fields an Upload-Metadata chose; a 400 naming a field that is invalid, or
    that the URL fixed. Other keys (`filetype`, `relativePath`: what clients send) are ignored."""
    params = TusMetadataSerializer(
        data={key: value for key, value in metadata.items() if key in METADATA_FIELDS},
        context={"fixed": upload.fixed},
    )
    params.is_valid(raise_exception=True)
    filename = next((metadata[key] for key in FILENAME_KEYS if metadata.get(key)), None)
    return filename, dict(params.validated_data)


def _chunk(request: Request, offset: int) -> Chunk:
    """The request's body as a chunk at `offset`; 415 unless it is application/offset+octet-stream."""
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    if media_type != tus.OFFSET_CONTENT_TYPE:
        raise tus.NotOffsetStream(f"A chunk's Content-Type must be {tus.OFFSET_CONTENT_TYPE}.")
    return Chunk(
        # DRF's Request hands reads to Django's, which bounds them by Content-Length.
        body=request,
        offset=offset,
        length=tus.parse_integer(request.META.get("CONTENT_LENGTH") or None, header="Content-Length"),
        checksum=tus.parse_checksum(request.headers.get("Upload-Checksum")),
    )


def _has_body(request: Request) -> bool:
    """creation-with-upload: a POST that carries bytes (or says it does by its Content-Type)."""
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    return media_type == tus.OFFSET_CONTENT_TYPE or request.META.get("CONTENT_LENGTH") not in (None, "", "0")


def speaks_tus(request: Request) -> bool:
    """Whether a POST to the upload URL is a tus creation rather than a multipart upload."""
    return any(name in request.headers for name in ("Tus-Resumable", "Upload-Length", "Upload-Defer-Length"))


def _progress_headers(upload: DirectUpload, appended: Appended | None = None) -> dict[str, str]:
    headers = {
        "Upload-Offset": str(upload.upload_offset),
        "Upload-Expires": tus.format_expires(upload.expires_at),
    }
    image = appended.image if appended is not None else upload.image
    if image is not None:
        headers["Imagery-Image"] = reverse("image-detail", kwargs={"image_id": image.pk})
    return headers


TUS_HEADER = OpenApiParameter("Tus-Resumable", str, OpenApiParameter.HEADER, required=True, enum=["1.0.0"])
OFFSET_HEADER = OpenApiParameter("Upload-Offset", int, OpenApiParameter.HEADER, required=True)
CHECKSUM_HEADER = OpenApiParameter(
    "Upload-Checksum", str, OpenApiParameter.HEADER, description="`sha1 <base64>` or `sha256 <base64>`."
)
_TUS_DOC = "tus 1.0 (https://tus.io): the upload URL is the resumable upload's resource too. "


class TusUploadMixin:
    """OPTIONS, HEAD, PATCH, DELETE of tus on the upload URL, and `tus_create` for its POST."""

    def get_throttles(self) -> list[Any]:
        # The creation (a POST) is the upload the upload limits count; each chunk counts as a chunk.
        if self.request.method in ("PATCH", "DELETE"):  # type: ignore[attr-defined]
            return [ChunksPerAddress()]
        return super().get_throttles()  # type: ignore[misc]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        response["Tus-Resumable"] = tus.TUS_VERSION
        if response.status_code == status.HTTP_412_PRECONDITION_FAILED:
            response["Tus-Version"] = tus.TUS_VERSION
        return response

    @extend_schema(exclude=True)
    def options(self, request: Request, upload_id: Any, secret: str) -> Response:
        upload = direct_upload_by_secret(upload_id=upload_id, secret=secret)
        return Response(
            status=status.HTTP_204_NO_CONTENT,
            headers=tus.discovery_headers(max_size=tus_upload_limit(upload)),
        )

    def tus_create(self, request: Request, upload: DirectUpload) -> Response:
        """A POST with Tus-Resumable: creation (with a body: creation-with-upload)."""
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        length = tus.parse_upload_length(request.headers.get("Upload-Length"))
        deferred = tus.parse_defer_length(request.headers.get("Upload-Defer-Length"))
        if (length is None) == (not deferred):
            raise tus.TusError(
                "Send Upload-Length, or Upload-Defer-Length: 1 (not both).", field="Upload-Length"
            )
        metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
        filename, chosen = tus_chosen(upload, metadata)
        chunk = _chunk(request, 0) if _has_body(request) else None
        appended = tus_upload_create(
            upload=upload, length=length, metadata=metadata, chunk=chunk, chosen=chosen, filename=filename
        )
        headers = {
            "Location": request.build_absolute_uri(request.path),
            **_progress_headers(upload, appended),
        }
        if chunk is None:
            del headers["Upload-Offset"]
        return Response(status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(exclude=True)
    def head(self, request: Request, upload_id: Any, secret: str) -> Response:
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        upload = direct_upload_by_secret(upload_id=upload_id, secret=secret)
        if upload.tus_created_at is None:
            raise UploadNotFound("This upload URL has no resumable upload; POST to create one.")
        if upload.completed_at is None:
            direct_upload_check_open(upload=upload)  # expired: 410
        # Completed: its offset is its length, and `Imagery-Image` names what it made.
        headers = _progress_headers(upload)
        if upload.upload_length is not None:
            headers["Upload-Length"] = str(upload.upload_length)
        else:
            headers["Upload-Defer-Length"] = "1"
        if upload.tus_metadata:
            headers["Upload-Metadata"] = tus.format_metadata(upload.tus_metadata)
        response = Response(status=status.HTTP_200_OK, headers=headers)
        patch_cache_control(response, no_store=True)
        return response

    @extend_schema(
        operation_id="uploads_tus_append",
        summary="Append a chunk to a resumable upload (tus PATCH)",
        description=_TUS_DOC
        + "The body is the bytes from `Upload-Offset` on (`Content-Type: application/offset+octet-stream`); "
        "204 with the new `Upload-Offset`. The last chunk makes the image: its answer carries "
        "`Imagery-Image: /images/{id}`, or the same 4xx as `POST /images` for a bad image.",
        request={tus.OFFSET_CONTENT_TYPE: OpenApiTypes.BINARY},
        parameters=[TUS_HEADER, OFFSET_HEADER, CHECKSUM_HEADER],
        responses={
            204: OpenApiResponse(description="Stored; `Upload-Offset` is the new offset."),
            **problem_responses(400, 404, 409, 410, 411, 412, 413, 415, 429, 460, 503),
        },
        auth=[],
    )
    def patch(self, request: Request, upload_id: Any, secret: str) -> Response:
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        upload = direct_upload_by_secret(upload_id=upload_id, secret=secret)
        offset = tus.parse_upload_offset(request.headers.get("Upload-Offset"))
        declared = tus.parse_upload_length(request.headers.get("Upload-Length"))
        chunk = _chunk(request, offset)
        filename, chosen = tus_chosen(upload, upload.tus_metadata)
        appended = tus_upload_append(
            upload=upload, chunk=chunk, declared_length=declared, chosen=chosen, filename=filename
        )
        return Response(
            status=status.HTTP_204_NO_CONTENT, headers=_progress_headers(appended.upload, appended)
        )

    @extend_schema(
        operation_id="uploads_tus_terminate",
        summary="Terminate a resumable upload (tus DELETE)",
        description=_TUS_DOC + "Its stored bytes are removed; the URL takes a new upload until it expires.",
        parameters=[TUS_HEADER],
        responses={
            204: OpenApiResponse(description="Terminated."),
            **problem_responses(404, 409, 410, 412, 429),
        },
        auth=[],
    )
    def delete(self, request: Request, upload_id: Any, secret: str) -> Response:
        tus.check_resumable(request.headers.get("Tus-Resumable"))
        upload = direct_upload_by_secret(upload_id=upload_id, secret=secret)
        tus_upload_terminate(upload=upload)
        return Response(status=status.HTTP_204_NO_CONTENT)
