"""The monitor serves its HTTP API over HTTPS when given a certificate and key."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from api_contract_support import built_monitor, serving
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gapwatch.errors import ConfigError
from gapwatch.monitor.config import HttpSettings

TOKEN = "https-token-0123456789"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gapwatch test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "tls.crt", directory / "tls.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


class TestHttps:
    async def test_api_is_served_over_tls(self, tmp_path: Path) -> None:
        """With a certificate and key the API answers over HTTPS (certificate verified,
        token still required) and refuses plain HTTP."""
        certfile, keyfile = self_signed(tmp_path)
        http = HttpSettings(tls_certfile=certfile, tls_keyfile=keyfile)
        monitor = built_monitor(token=TOKEN, http=http)
        trust = ssl.create_default_context(cafile=str(certfile))
        async with serving(monitor) as base:
            assert base.startswith("https://127.0.0.1:")
            async with httpx.AsyncClient(verify=trust, timeout=5.0) as client:
                health = await client.get(f"{base}/healthz")
                denied = await client.get(f"{base}/streams")
                streams = await client.get(
                    f"{base}/streams", headers={"Authorization": f"Bearer {TOKEN}"}
                )
            plain = base.replace("https://", "http://")
            async with httpx.AsyncClient(timeout=5.0) as client:
                with pytest.raises(httpx.TransportError):
                    await client.get(f"{plain}/healthz")
        assert health.status_code == 200
        assert denied.status_code == 401
        assert streams.json()["group_id"] == "contract"

    def test_certificate_and_key_come_together(self, tmp_path: Path) -> None:
        """A certificate without its key (or the reverse) is refused, naming the missing one."""
        with pytest.raises(ConfigError, match="http_tls_keyfile"):
            HttpSettings(tls_certfile=tmp_path / "c").validate()
        with pytest.raises(ConfigError, match="http_tls_certfile"):
            HttpSettings(tls_keyfile=tmp_path / "k").validate()
