"""HTTP endpoints for upload URLs: mint one (with a key), upload to one (without), ask about one."""

from __future__ import annotations

import uuid

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api.params import one_value_each
from api.schema import problem_responses
from images.serializers import ImageCreateInputSerializer, ImageOutputSerializer
from uploads.limits import limit_upload
from uploads.models import DirectUpload
from uploads.selectors import direct_upload_by_secret, direct_upload_get_visible
from uploads.serializers import (
    DirectUploadCreatedSerializer,
    DirectUploadCreateInputSerializer,
    DirectUploadInputSerializer,
    DirectUploadOutputSerializer,
)
from uploads.services import direct_upload_check_open, direct_upload_complete, direct_upload_create
from uploads.tus_apis import TusUploadMixin, speaks_tus


def upload_url(request: Request, upload: DirectUpload, secret: str) -> str:
    return request.build_absolute_uri(
        reverse("upload-url", kwargs={"upload_id": upload.pk, "secret": secret})
    )


class DirectUploadCollectionApi(GenericAPIView):
    serializer_class = DirectUploadCreatedSerializer
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="uploads_create",
        summary="Make a one-time upload URL",
        description=(
            "For a browser or a phone that must not hold the API key: the answer's `upload_url` takes one "
            "image, with no key, until `expires_at`, and the image belongs to the key that made the URL. "
            "What the request fixes (`title`, `width`, `height`, `fit`, `format`, `visibility`, "
            "`metadata`) the uploader cannot change; what it leaves out the uploader may send, as for "
            "`POST /images`. `Location` is the URL's state (`GET /uploads/{id}`)."
        ),
        request={"application/json": DirectUploadCreateInputSerializer},
        responses={201: DirectUploadCreatedSerializer, **problem_responses(400, 401, 429)},
    )
    def post(self, request: Request) -> Response:
        params = DirectUploadCreateInputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        values = dict(params.validated_data)
        max_bytes, expires_in = values.pop("max_bytes"), values.pop("expires_in")
        upload, secret = direct_upload_create(
            api_key=request.auth, fixed=values, max_bytes=max_bytes, expires_in=expires_in
        )
        context = {**self.get_serializer_context(), "upload_url": upload_url(request, upload, secret)}
        return Response(
            DirectUploadCreatedSerializer(upload, context=context).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("upload-detail", kwargs={"upload_id": upload.pk})},
        )


class DirectUploadDetailApi(GenericAPIView):
    serializer_class = DirectUploadOutputSerializer

    @extend_schema(
        operation_id="uploads_retrieve",
        summary="Get an upload URL's state",
        description=(
            "`pending`, `completed` (with the image) or `expired`. For the API key that made it and admin "
            "keys; any other key gets 404."
        ),
        responses={200: DirectUploadOutputSerializer, **problem_responses(401, 404, 429)},
    )
    def get(self, request: Request, upload_id: uuid.UUID) -> Response:
        upload = direct_upload_get_visible(upload_id=upload_id, key=request.auth)
        return Response(self.get_serializer(upload).data)


SECRET = OpenApiParameter(
    "secret", str, OpenApiParameter.PATH, description="The URL's secret, as `upload_url` has it."
)


class DirectUploadUrlApi(TusUploadMixin, GenericAPIView):
    """The upload URL itself: `/uploads/{id}/{secret}`, the secret being the only credential. It is also a
    tus 1.0 creation endpoint and the resumable upload's resource (uploads/tus_apis.py)."""

    serializer_class = ImageOutputSerializer
    # No key: holding the URL is the permission. A key sent is not looked at.
    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="uploads_upload",
        summary="Upload the image of a one-time upload URL",
        description=(
            "No API key: the URL is the permission. One multipart `image` and the fields the URL left open "
            "(a field it fixed is a 400); answered exactly as `POST /images`, the image owned by the key "
            "that made the URL. Once: a second upload is a 409, after `expires_at` a 410, a file over the "
            "URL's `max_bytes` a 413 before it is read. A refused image leaves the URL usable. With "
            "`Tus-Resumable: 1.0.0` and `Upload-Length` it is a tus 1.0 creation instead (201, `Location`: "
            'this URL), continued by `PATCH` (README, "Resumable uploads").'
        ),
        request={"multipart/form-data": ImageCreateInputSerializer},
        responses={201: ImageOutputSerializer, **problem_responses(400, 404, 409, 410, 413, 415, 429, 503)},
        parameters=[SECRET],
        auth=[],
    )
    def post(self, request: Request, upload_id: uuid.UUID, secret: str) -> Response:
        upload = direct_upload_by_secret(upload_id=upload_id, secret=secret)
        # A POST that speaks tus (Tus-Resumable, Upload-Length) is a tus creation on this same URL; decided
        # before anything reads the body.
        if speaks_tus(request):
            return self.tus_create(request, upload)
        return self.upload_once(request, upload)

    def upload_once(self, request: Request, upload: DirectUpload) -> Response:
        """The one-shot upload: a multipart `image`, processed as POST /images processes it."""
        # Used or expired: refused before the body is read.
        direct_upload_check_open(upload=upload)
        limit_upload(request, max_bytes=upload.max_bytes)
        params = DirectUploadInputSerializer(
            data=one_value_each(request.data, DirectUploadInputSerializer),
            context={"fixed": upload.fixed},
        )
        params.is_valid(raise_exception=True)
        chosen = dict(params.validated_data)
        file = chosen.pop("image")
        image = direct_upload_complete(upload=upload, file=file, filename=file.name, chosen=chosen)
        return Response(
            self.get_serializer(image).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": reverse("image-detail", kwargs={"image_id": image.pk})},
        )
