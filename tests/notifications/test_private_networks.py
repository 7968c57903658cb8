"""Targets on loopback, link-local and private networks are refused unless
NOTIFY_ALLOW_PRIVATE_NETWORKS: when a channel is saved (`netguard.check_url`) and when a
delivery is sent (the refusal recorded on the attempt); webhooks connect to the address
that was checked."""

from __future__ import annotations

import asyncio
import socket

import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.models import DeliveryAttempt
from parcelwatch.notifications import netguard
from tests.conftest import Database
from tests.notifications.conftest import (
    NO_RETRY_SOON,
    Receiver,
    World,
    dispatching,
    notify_settings,
    until,
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/api/webhook/x",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "https://192.168.1.20/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_webhook_urls_on_private_networks_are_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(ValueError, match="NOTIFY_ALLOW_PRIVATE_NETWORKS"):
        netguard.check_url(url, allow_private=False)
    netguard.check_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("http:///path-only", "names no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://no-such-host.invalid/hook", "cannot resolve"),
    ],
)
def test_malformed_webhook_urls_are_refused_whatever_the_setting(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        netguard.check_url(url, allow_private=url.endswith("hook") and "invalid" not in url)


def test_public_addresses_pass() -> None:
    netguard.check_url("https://93.184.215.14/hook", allow_private=False)
    netguard.check_url("http://[2606:4700:4700::1111]/hook", allow_private=False)


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("json://127.0.0.1:8000/notify", True),
        ("ntfy://10.1.2.3/topic", True),
        ("mailto://user:pw@localhost", True),
        ("tgram://123456789:ABCdefGHIjklMNOpqr/12345", False),  # Telegram's own API
        ("ntfy://my-topic", False),  # ntfy.sh
    ],
)
def test_apprise_urls_naming_a_private_host_are_refused(url: str, refused: bool) -> None:
    if refused:
        with pytest.raises(ValueError, match="NOTIFY_ALLOW_PRIVATE_NETWORKS"):
            netguard.check_url(url, allow_private=False, kind="apprise")
    else:
        netguard.check_url(url, allow_private=False, kind="apprise")
    netguard.check_url(url, allow_private=True, kind="apprise")


def test_an_apprise_url_apprise_does_not_understand_is_refused() -> None:
    with pytest.raises(ValueError, match="Apprise does not understand"):
        netguard.check_url("nosuchservice://x", allow_private=True, kind="apprise")


@pytest.mark.anyio
async def test_a_pinned_webhook_connects_to_the_checked_address_with_the_original_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter(["93.184.215.14", "127.0.0.1"])  # a rebinding name: public, then local

    async def rebinding_dns(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding_dns)
    target = await netguard.pinned("https://hooks.example:8443/hook?a=1", allow_private=False)
    assert target.url == "https://93.184.215.14:8443/hook?a=1"  # resolved once, checked
    assert target.host_header == "hooks.example:8443"
    assert target.sni_hostname == "hooks.example"  # TLS still verifies the name
    with pytest.raises(ValueError, match=r"hooks.example resolves to 127.0.0.1"):
        await netguard.pinned("http://hooks.example/hook", allow_private=False)


@pytest.mark.anyio
async def test_a_webhook_request_goes_to_the_address_that_was_checked(
    world: World, database: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in DNS answers 127.0.0.1 for hooks.example, and loopback is let through the
    check for this test only: the request reaches that address, named by its Host."""
    real = asyncio.get_running_loop().getaddrinfo

    async def dns(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        if host == "hooks.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real(host, port, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", dns)
    monkeypatch.setattr(netguard, "is_public", lambda address: True)
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    port = receiver.url.rsplit(":", 1)[1]
    channel = world.channel(owner, "webhook", f"http://hooks.example:{port}/hook")
    (message_id,) = world.notify(tracker, [channel])
    settings = notify_settings(database, notify_allow_private_networks=False)
    async with dispatching(settings, database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    (arrival,) = receiver.arrivals
    assert arrival.headers["host"] == f"hooks.example:{port}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_deliveries_to_private_targets_are_refused_and_the_reason_recorded(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    webhook = world.channel(owner, "webhook", f"{receiver.url}/hook")
    apprise = world.channel(owner, "apprise", receiver.url.replace("http://", "json://"))
    ids = world.notify(tracker, [webhook, apprise])
    settings = notify_settings(database, notify_allow_private_networks=False)
    async with dispatching(settings, database, NO_RETRY_SOON):
        await until(lambda: all(world.delivery(i).attempts == 1 for i in ids))
    assert receiver.arrivals == []
    with database.sessions() as session:
        errors = [attempt.error or "" for attempt in session.query(DeliveryAttempt)]
    assert len(errors) == 2
    for error in errors:
        assert "127.0.0.1" in error
        assert "NOTIFY_ALLOW_PRIVATE_NETWORKS" in error
    assert world.channel_row(webhook).consecutive_failures == 1  # a refusal counts
