"""What the API stores of its own: which API keys are administrators."""

from django.db import models


class AdminKey(models.Model):
    """An API key that may delete and edit any image, not only those it uploaded.

    Made with `manage.py apikey create NAME --admin`. A separate table rather than a column on the key:
    the key model is djangorestframework-api-key's.
    """

    api_key = models.OneToOneField(
        "rest_framework_api_key.APIKey", on_delete=models.CASCADE, primary_key=True, related_name="admin"
    )

    def __str__(self) -> str:
        return f"admin: {self.api_key}"
