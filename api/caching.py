"""HTTP caching values shared by every response that carries them."""

# For URLs whose content never changes (their names are content hashes): any cache may keep them a year.
CACHE_FOREVER = "public, max-age=31536000, immutable"
