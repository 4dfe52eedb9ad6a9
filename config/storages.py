"""Where image files are kept, from the environment: `STORAGE_BACKEND=filesystem` (default) or `s3`.

`settings.py` builds `STORAGES["default"]` with `default_storage_from_env()`; the tests call it too, with the
environment pointing at the S3 server they start, so the suite runs the configuration production runs.
The S3 variables keep django-storages' own names (`AWS_STORAGE_BUCKET_NAME`, `AWS_S3_ENDPOINT_URL`, …).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from api.caching import CACHE_FOREVER
from config.env import env


def default_storage_from_env() -> dict[str, Any]:
    """The `STORAGES["default"]` entry that `STORAGE_BACKEND` asks for."""
    backend = env.str("STORAGE_BACKEND", default="filesystem")
    if backend == "filesystem":
        # MEDIA_ROOT and MEDIA_URL (settings) say where the files go and how they are reached. Files are
        # written to a temporary name and renamed into place: whole, or not there at all.
        return {"BACKEND": "images.storage.AtomicFileSystemStorage"}
    if backend == "s3":
        return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options()}
    raise ImproperlyConfigured(f"STORAGE_BACKEND must be filesystem or s3, not {backend!r}.")


def _s3_options() -> dict[str, Any]:
    # Imported here: a filesystem deployment never loads boto.
    from botocore.config import Config

    return {
        "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
        # Unset: AWS itself. Set for MinIO, Ceph, R2… (e.g. http://minio:9000).
        "endpoint_url": _optional("AWS_S3_ENDPOINT_URL"),
        "region_name": _optional("AWS_S3_REGION_NAME"),
        # Unset: boto3's own chain (AWS_* variables, ~/.aws, the instance or task role).
        "access_key": _optional("AWS_ACCESS_KEY_ID"),
        "secret_key": _optional("AWS_SECRET_ACCESS_KEY"),
        # The host (and path) clients fetch files from, e.g. a CDN: cdn.example.com.
        "custom_domain": _optional("AWS_S3_CUSTOM_DOMAIN"),
        "url_protocol": env.str("AWS_S3_URL_PROTOCOL", default="https:"),
        # Public, cacheable URLs by default; signed ones change on every response and expire.
        "querystring_auth": env.bool("AWS_QUERYSTRING_AUTH", default=False),
        "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=3600),
        # django-storages replaces same-named objects by default. Names are content hashes, so an
        # existing object already holds these bytes: never write over it.
        "file_overwrite": False,
        # Reading an object keeps this many bytes in memory, then spools to a temporary file
        # (django-storages' default, 0, never spools: the whole object stays in memory).
        "max_memory_size": env.int("AWS_S3_MAX_MEMORY_SIZE", default=10 * 1024 * 1024),
        # Content-Type is set per object from its format (images.storage).
        "object_parameters": {"CacheControl": CACHE_FOREVER},
        "client_config": Config(
            s3={"addressing_style": _optional("AWS_S3_ADDRESSING_STYLE")},
            # A user waits on these: a store that hangs costs a request at most about
            # read_timeout x attempts (+ a backoff under 1 s), 5 s at the defaults, then a 503 with
            # nothing saved. (boto3's own 60 s x 3 held a thread for minutes; our old 10 s x 3, 30 s.)
            connect_timeout=env.float("AWS_S3_CONNECT_TIMEOUT", default=2.0),
            read_timeout=env.float("AWS_S3_READ_TIMEOUT", default=2.0),
            # Attempts in all, the first included.
            retries={"mode": "standard", "total_max_attempts": env.int("AWS_S3_MAX_ATTEMPTS", default=2)},
            # Signed requests and URLs (AWS_QUERYSTRING_AUTH) use SigV4, which every region accepts.
            signature_version="s3v4",
        ),
    }


def _optional(name: str) -> str | None:
    """An optional variable; set but empty (as in a copied `.env.example`) counts as unset."""
    return env.str(name, default="") or None
