"""Address ranges from a setting: comma-separated networks, parsed once at start-up so a typo stops it."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network

from django.core.exceptions import ImproperlyConfigured

Network = IPv4Network | IPv6Network


def parse_networks(name: str, value: str) -> tuple[Network, ...]:
    """`"127.0.0.0/8, ::1/128"` -> its networks; a bare address is a network of one; empty -> none.

    Raises ImproperlyConfigured, naming the variable, for anything that is not a network, including one
    with host bits set (`10.0.0.1/8`): it means `10.0.0.0/8` or a typo, and we do not guess which.
    """
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            networks.append(ip_network(item))
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not a network like 10.0.0.0/8 or ::1/128 ({error})."
            ) from error
    return tuple(networks)
