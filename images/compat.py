"""Every use of django-storages' private names, in one place.

django-storages offers no public way to do this; it is one line here, and tests/test_compat.py fails loudly
when an upgrade changes it. (Pillow's private names are in images/pixels/compat.py.)
"""

from __future__ import annotations

from typing import Any


def s3_session(backend: Any) -> Any:
    """The boto3 session django-storages' S3 backend builds its clients from (its credentials and config)."""
    return backend._create_session()
