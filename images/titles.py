"""Titles: the default taken from a file name, and the folded form that case-insensitive search uses."""

import unicodedata
from pathlib import PurePath

TITLE_MAX_LENGTH = 255


def default_title(filename: str | None) -> str:
    """The uploaded file's name without its extension, or "untitled" when there is nothing left."""
    stem = PurePath(filename or "").stem.strip()
    return stem[:TITLE_MAX_LENGTH] or "untitled"


def fold(text: str) -> str:
    """A case- and compatibility-folded form, so "ÜBER", "über" and "Über" all match each other.

    SQLite's LIKE folds ASCII only, so searching a stored folded column is what makes the filter behave
    the same on SQLite and PostgreSQL.
    """
    return unicodedata.normalize("NFKC", text).casefold()
