"""Safe webhook targets: which URLs may be called, and the one address a delivery connects to.

A URL must be https (http with WEBHOOK_ALLOW_HTTP, for development), name a host and carry no user info.
At send time its host is resolved here and refused when ANY address it resolves to is not a public
unicast one (loopback, private, link-local, unspecified, multicast, reserved, CGNAT, or an IPv6 address
that embeds such an IPv4 one: mapped, compatible, 6to4, Teredo, NAT64), unless WEBHOOK_ALLOW_PRIVATE.
The caller then connects to the address checked here, never resolving the name again: a second lookup
could answer another address (DNS rebinding). imgproxy's two SSRF advisories came from a blocklist that
missed 0.0.0.0 and from redirects, which sending.py never follows.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Special-purpose (RFC 6890); not every Python marks all of it non-global.
_IETF = ipaddress.ip_network("192.0.0.0/24")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_DEFAULT_PORTS = {"https": 443, "http": 80}


class TargetRefused(Exception):
    """A URL or an address a webhook may not be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where one request goes: the checked `address`, and the name it is made for (Host, TLS)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str  # with its query

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def refusal(ip: IPAddress) -> str | None:
    """Why a webhook may not go to `ip`, or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_unspecified or ip.is_loopback:
            return "unspecified" if ip.is_unspecified else "loopback"
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is a.b.c.d on the wire: judged as that address alone.
            reason = refusal(ip.ipv4_mapped)
            return None if reason is None else f"embeds {ip.ipv4_mapped}, {reason}"
        for inner in _embedded_ipv4(ip):
            reason = refusal(inner)
            if reason is not None:
                return f"embeds {inner}, {reason}"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared address space (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("IETF protocol assignment", isinstance(ip, ipaddress.IPv4Address) and ip in _IETF),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("not globally reachable", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one carries and may route to (each is checked as itself)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip.packed[:12] == bytes(12) or any(ip in net for net in _NAT64):
        # IPv4-compatible (::a.b.c.d, deprecated) and NAT64: the last 32 bits are the IPv4 address.
        found.append(ipaddress.IPv4Address(ip.packed[12:]))
    return found


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL a webhook may be sent to; TargetRefused with the reason.

    The checks that need no DNS: made when an endpoint is created (a clear 400) and again at send time.
    """
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise TargetRefused(
            "Not a valid URL: spaces, control and non-ASCII characters must be encoded (punycode for a "
            "host, percent-encoding elsewhere)."
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("Not a valid URL.") from None
    if port == 0:
        raise TargetRefused("A webhook URL's port must be 1 to 65535.")
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if scheme not in allowed:
        raise TargetRefused(
            "A webhook URL must be https." if scheme != "https" else "A webhook URL must be https or http."
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefused("A webhook URL may not carry a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("A webhook URL must name a host.")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        literal = _ip_literal(host)
        if literal is not None and (reason := refusal(literal)) is not None:
            raise TargetRefused(f"A webhook may not be sent to {literal} ({reason}).")
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise TargetRefused("A webhook may not be sent to localhost.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port or _DEFAULT_PORTS[scheme], path


# What inet_aton (and so getaddrinfo) reads as an IPv4 address besides the dotted quad: 1 to 4 parts, each
# decimal, octal (leading 0) or hex (0x): `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are 127.0.0.1.
_LEGACY_IPV4 = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")


def _ip_literal(host: str) -> IPAddress | None:
    """The address `host` is, as the resolver will read it: the forms ipaddress parses, and the legacy
    IPv4 forms that ipaddress refuses but getaddrinfo accepts without a lookup."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def resolve(url: str) -> Target:
    """The target of `url`: its host resolved once and every address checked; TargetRefused otherwise."""
    scheme, host, port, path = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"{host} does not resolve: {exc}.") from None
    addresses = []
    for info in infos:
        # The scope of a link-local IPv6 address (`fe80::1%eth0`) is no part of the address checked.
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not settings.WEBHOOK_ALLOW_PRIVATE and (reason := refusal(ip)) is not None:
            # One bad address refuses the name: which one a connection would use is not ours to pick.
            raise TargetRefused(f"{host} resolves to {ip} ({reason}).")
        addresses.append(ip)
    if not addresses:
        raise TargetRefused(f"{host} resolves to no address.")
    return Target(scheme=scheme, host=host, port=port, address=str(addresses[0]), path=path)
