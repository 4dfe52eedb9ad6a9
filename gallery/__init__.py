"""The web gallery: one page, served by Imagery itself, that uploads, searches and shows images through the
public API only (its JavaScript calls /images like any other client)."""
