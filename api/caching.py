"""HTTP caching values shared by every response that carries them."""

from django.conf import settings

# For URLs whose content never changes (their names are content hashes): any cache may keep them a year.
CACHE_FOREVER = "public, max-age=31536000, immutable"
# The same for the client's own cache only: a shared cache (a CDN, nginx's proxy_cache) must not keep it.
CACHE_FOREVER_PRIVATE = "private, max-age=31536000, immutable"


def cache_forever_read() -> str:
    """Cache-Control of a never-changing answer that the API gave to a read.

    Where reads need an API key (IMAGERY_AUTH=all) the answer is the key holder's: `public` would let a
    shared cache keep it and hand it to anyone (RFC 9111, 3.5: `public` lifts the rule that an answer to a
    request with Authorization is not shared), so it is `private`, still kept a year by the client.
    """
    return CACHE_FOREVER_PRIVATE if settings.IMAGERY_AUTH == "all" else CACHE_FOREVER
