"""Email alerts to a real SMTP server (aiosmtpd) that requires STARTTLS before it accepts a
login, with a certificate of a private CA trusted through SSL_CERT_FILE, as an operator's
own mail relay would be set up."""

from __future__ import annotations

import email
import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from parcelwatch.config import load_settings
from parcelwatch.ops.alerts.dispatch import AlertRetryPolicy, send_test_alert
from tests.ops.conftest import Mailbox, serve_mailbox

pytestmark = pytest.mark.anyio
ONCE = AlertRetryPolicy(attempts=1, backoff=0)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parcelwatch test relay")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay.pem", directory / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def relay_cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def tls_mailbox(relay_cert: tuple[Path, Path]) -> Iterator[Mailbox]:
    """The SMTP server that accepts a login only after STARTTLS, with the relay certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*relay_cert)
    with serve_mailbox(tls_context=context, require_starttls=True, auth_require_tls=True) as box:
        yield box


def email_settings(box: Mailbox) -> Any:
    return load_settings(
        _env_file=None,
        alert_email_enabled=True,
        alert_email_recipients="ops@example.com",
        alert_email_from="parcelwatch@example.com",
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=box.port,
        alert_smtp_user="alerts",
        alert_smtp_pass="s3cret-smtp",
    )


async def test_email_upgrades_with_starttls_before_logging_in(
    tls_mailbox: Mailbox, relay_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(relay_cert[0]))

    deliveries = await send_test_alert(email_settings(tls_mailbox), retry=ONCE)

    email_result = next(d for d in deliveries if d.channel == "email")
    assert email_result.delivered, email_result.error
    assert tls_mailbox.logins == ["alerts"]
    assert tls_mailbox.logins_over_tls == [True]
    message = email.message_from_bytes(tls_mailbox.messages[0].content)
    assert "TEST" in message["Subject"]


async def test_a_relay_certificate_that_is_not_trusted_is_a_reported_failure(
    tls_mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other_cert, _ = self_signed_certificate(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other_cert))

    deliveries = await send_test_alert(email_settings(tls_mailbox), retry=ONCE)

    email_result = next(d for d in deliveries if d.channel == "email")
    assert not email_result.delivered
    assert email_result.error is not None
    assert "s3cret-smtp" not in email_result.error
    assert tls_mailbox.logins == []
    assert tls_mailbox.messages == []
