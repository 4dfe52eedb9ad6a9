"""URL routes. Every API path answers with and without a trailing slash (no redirect breaks a POST)."""

from django.conf import settings
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from api.health import healthz, metrics, readyz
from events.apis import (
    WebhookCollectionApi,
    WebhookDeliveriesApi,
    WebhookDeliveryRetryApi,
    WebhookDetailApi,
)
from gallery.views import DirectUploadView, GalleryView, UploadLinkView
from images.apis import ImageCollectionApi, ImageDetailApi
from images.file_apis import ImageFileApi
from images.files import serve_image_file
from uploads.apis import DirectUploadCollectionApi, DirectUploadDetailApi, DirectUploadUrlApi

handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "api.errors.page_not_found"
handler500 = "api.errors.server_error"

urlpatterns = [
    path("images", ImageCollectionApi.as_view(), name="image-collection"),
    path("images/", ImageCollectionApi.as_view()),
    path("images/<int:image_id>", ImageDetailApi.as_view(), name="image-detail"),
    path("images/<int:image_id>/", ImageDetailApi.as_view()),
    path("images/<int:image_id>/file", ImageFileApi.as_view(), name="image-file"),
    path("images/<int:image_id>/file/", ImageFileApi.as_view()),
    path("webhooks", WebhookCollectionApi.as_view(), name="webhook-collection"),
    path("webhooks/", WebhookCollectionApi.as_view()),
    path("webhooks/<int:endpoint_id>", WebhookDetailApi.as_view(), name="webhook-detail"),
    path("webhooks/<int:endpoint_id>/", WebhookDetailApi.as_view()),
    path("webhooks/<int:endpoint_id>/deliveries", WebhookDeliveriesApi.as_view(), name="webhook-deliveries"),
    path("webhooks/<int:endpoint_id>/deliveries/", WebhookDeliveriesApi.as_view()),
    path(
        "webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/retry",
        WebhookDeliveryRetryApi.as_view(),
        name="webhook-delivery-retry",
    ),
    path("webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/retry/", WebhookDeliveryRetryApi.as_view()),
    path("uploads", DirectUploadCollectionApi.as_view(), name="upload-collection"),
    path("uploads/", DirectUploadCollectionApi.as_view()),
    path("uploads/<uuid:upload_id>", DirectUploadDetailApi.as_view(), name="upload-detail"),
    path("uploads/<uuid:upload_id>/", DirectUploadDetailApi.as_view()),
    # The upload URL: its secret in the path, since a tus client appends nothing to the URL it is given.
    path("uploads/<uuid:upload_id>/<str:secret>", DirectUploadUrlApi.as_view(), name="upload-url"),
    path("uploads/<uuid:upload_id>/<str:secret>/", DirectUploadUrlApi.as_view()),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),
        name="redoc",
    ),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("", GalleryView.as_view(), name="gallery"),
    path("upload-link", UploadLinkView.as_view(), name="upload-link"),
    path("u", DirectUploadView.as_view(), name="direct-upload"),
    # With files on local disk the app serves them itself; with S3 the URLs point at the bucket and this
    # answers 404 (the view decides per request, so a changed storage setting needs no new URLconf).
    re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<name>.+)$", serve_image_file, name="media"),
]
