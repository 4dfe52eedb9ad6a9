"""Safe webhook targets (events/targets.py): every address class refused, names resolved once at send time
and every address checked, the connection made to the address checked, http only when allowed."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest
from django.db import transaction

import events
from events import deliveries, sending
from events.models import Delivery, WebhookEndpoint
from events.targets import TargetRefused, check_url, refusal, resolve
from tests.receivers import Receiver
from tests.test_webhooks import create_key
from tests.tls import certificate_files

REFUSED = [
    "0.0.0.0",  # noqa: S104 (an address refused, not one bound)
    "0.1.2.3",
    "::",
    "127.0.0.1",
    "127.255.0.9",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible
    "169.254.169.254",  # the cloud metadata service
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "192.0.0.8",
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",  # site-local
    "ff02::1",
    "2001:db8::1",  # documentation
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_every_address_that_is_not_public_unicast_is_refused(address):
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_are_allowed(address):
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/",
        "ftp://hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://:pw@hooks.example.com/",
        "https:///path",
        "https://hooks.example.com:99999/",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",
        "https://10.1.2.3/",
        "https://localhost/",
        "https://api.localhost./",
        "https://hooks.example.com/a path",
        "https://hooks.example.com/\r\nX-Injected: 1",
        "https://hooks.example.com/caf\u00e9",
        "https://[::1/",
        # IPv4 forms ipaddress refuses but inet_aton (getaddrinfo) reads: loopback, private, 0.0.0.0.
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://0x7f.1/",
        "https://0x7F000001/",
        "https://127.1/",
        "https://10.1/",
        "https://0/",
        "https://hooks.example.com:0/",
    ],
)
def test_urls_refused_without_a_lookup(settings, url):
    with pytest.raises(TargetRefused):
        check_url(url)


def test_legacy_ipv4_forms_are_judged_as_the_address_they_are_and_names_are_not(settings):
    # 134744072 is 8.8.8.8: public, so allowed as that address; names that merely look numeric are names.
    assert check_url("https://134744072/")[1] == "134744072"
    assert check_url("https://0x7f.example.com/")[1] == "0x7f.example.com"
    assert check_url("https://1.2.3.4.5/")[1] == "1.2.3.4.5"


def test_the_api_refuses_a_decimal_loopback_url_with_a_400(api):
    admin = {"Authorization": f"Bearer {create_key('ops', admin=True)}"}
    response = api.post(
        "/webhooks", {"url": "https://2130706433/"}, content_type="application/json", headers=admin
    )
    assert response.status_code == 400, response.content
    assert "127.0.0.1" in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


def test_http_only_when_allowed_and_private_literals_only_when_allowed(settings):
    with pytest.raises(TargetRefused, match="https"):
        check_url("http://hooks.example.com/")
    settings.WEBHOOK_ALLOW_HTTP = True
    assert check_url("http://hooks.example.com/x?a=1") == ("http", "hooks.example.com", 80, "/x?a=1")
    with pytest.raises(TargetRefused, match="loopback"):
        check_url("http://127.0.0.1:8000/")
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert check_url("http://127.0.0.1:8000/") == ("http", "127.0.0.1", 8000, "/")


def _resolving(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """getaddrinfo answering `answers` by name; returns the names looked up, in order."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:  # a numeric address (urllib3 connecting to the one we checked): no lookup happens
            return real(host, port, *args, **kwargs)
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_is_refused_when_any_of_its_addresses_is(monkeypatch):
    _resolving(
        monkeypatch,
        {
            "loop.example": ["127.0.0.1"],
            "mixed.example": ["93.184.216.34", "10.0.0.7"],
            "mapped.example": ["::ffff:127.0.0.1"],
            "meta.example": ["169.254.169.254"],
            "ok.example": ["93.184.216.34", "2606:4700:4700::1111"],
        },
    )
    for name in ("loop", "mixed", "mapped", "meta"):
        with pytest.raises(TargetRefused, match="resolves to"):
            resolve(f"https://{name}.example/hook")
    with pytest.raises(TargetRefused, match="does not resolve"):
        resolve("https://nowhere.example/")
    target = resolve("https://ok.example:8443/hook?x=1")
    assert (target.address, target.host, target.port, target.path) == (
        "93.184.216.34",
        "ok.example",
        8443,
        "/hook?x=1",
    )
    assert target.host_header == "ok.example:8443"


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.WEBHOOK_ALLOW_HTTP = True
    server = Receiver()
    yield server
    server.stop()
    sending.close_connections()


def _delivery_to(url: str) -> Delivery:
    WebhookEndpoint.objects.create(url=url)
    with transaction.atomic():
        events.record("image.deleted", {"id": 1, "key": None})
    return Delivery.objects.get()


def test_a_name_that_resolves_to_loopback_is_refused_at_send_time(db, receiver, monkeypatch, settings):
    port = receiver.server.server_address[1]
    # Created while it pointed elsewhere (or through a name that changed since): the send-time check counts.
    delivery = _delivery_to(f"http://rebind.example:{port}/hook")
    _resolving(monkeypatch, {"rebind.example": ["127.0.0.1"]})
    answer = deliveries.attempt(delivery.pk)
    assert answer is not None and not answer.delivered
    assert "refused" in answer.error and "loopback" in answer.error
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_checked_with_the_name_as_host(
    db, receiver, monkeypatch, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    delivery = _delivery_to(f"http://hooks.example:{port}/in")
    asked = _resolving(monkeypatch, {"hooks.example": ["127.0.0.1"]})
    assert deliveries.attempt(delivery.pk).delivered
    # Resolved once, by us: the connection did not look the name up again (DNS rebinding).
    assert asked == ["hooks.example"]
    assert receiver.requests[0].headers["Host"] == f"hooks.example:{port}"
    assert receiver.requests[0].path == "/in"


def test_https_goes_to_the_checked_address_with_the_name_in_sni_and_the_certificate_check(
    db, tmp_path, monkeypatch, settings
):
    """TLS names the host (SNI) and checks the certificate for it, though the connection goes to the
    address resolved and checked here; a certificate for another name is refused."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    ca, cert, key = certificate_files(tmp_path, "hooks.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the system's trust store, for this test: our CA
    receiver = Receiver(tls=(cert, key))
    try:
        _resolving(monkeypatch, {"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
        delivery = _delivery_to(f"https://hooks.example:{receiver.port}/in")
        assert deliveries.attempt(delivery.pk).delivered
        assert receiver.server_names == ["hooks.example"]
        assert receiver.requests[0].headers["Host"] == f"hooks.example:{receiver.port}"
        WebhookEndpoint.objects.update(url=f"https://other.example:{receiver.port}/in")
        Delivery.objects.update(status="pending", next_attempt_at=Delivery.objects.get().created_at)
        answer = deliveries.attempt(delivery.pk)
        assert not answer.delivered
        assert "certificate" in answer.error.lower() or "hostname" in answer.error.lower()
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()
        sending.close_connections()
