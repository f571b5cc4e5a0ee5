"""The test bed's own certificate authority and the certificates it signs, as files.

Generated locally with the ``cryptography`` package (nothing is downloaded) each time a
secured cluster starts. Brokers get a PKCS#12 keystore whose certificate names
``IP:127.0.0.1`` (clients connect by that address and check it); clients get PEM files,
which aiokafka, librdkafka and kcat all read. Keys are EC P-256: generating one takes
microseconds, where RSA-2048 takes tens of milliseconds.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ORGANISATION = "gapwatch test bed"
# Long enough for any test run or demo, short enough that a leaked test CA soon expires.
_VALIDITY = datetime.timedelta(days=30)
# Certificates start an hour in the past, so a clock a little behind still accepts them.
_BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA key and its self-signed certificate, able to sign leaf certificates."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, common_name: str = "gapwatch test bed CA") -> CertificateAuthority:
        """A fresh CA valid for the next 30 days."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(is_ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def issue(self, common_name: str, *, ip_addresses: Sequence[str] = ()) -> Leaf:
        """A certificate for ``common_name`` signed by this CA, usable for both ends of a
        TLS connection (brokers are clients of each other); ``ip_addresses`` become IP SANs."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(is_ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if ip_addresses:
            sans: list[x509.GeneralName] = [
                x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Leaf(key, builder.sign(self.key, hashes.SHA256()))

    def write_certificate(self, path: Path) -> None:
        """The CA certificate as PEM: the truststore of brokers and clients."""
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True, slots=True)
class Leaf:
    """A signed certificate and its private key."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def write_pem(self, certfile: Path, keyfile: Path) -> None:
        """Certificate and unencrypted PKCS#8 key as PEM files; the key readable only by
        its owner."""
        certfile.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        keyfile.touch(mode=0o600)
        keyfile.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def write_pkcs12(self, path: Path, *, ca: CertificateAuthority, password: str) -> None:
        """A PKCS#12 keystore with the key and its chain, as a broker's ``ssl.keystore``."""
        path.write_bytes(
            pkcs12.serialize_key_and_certificates(
                name=b"broker",
                key=self.key,
                cert=self.certificate,
                cas=[ca.certificate],
                encryption_algorithm=serialization.BestAvailableEncryption(password.encode()),
            )
        )


def _name(common_name: str) -> x509.Name:
    # Most general first, as in X.509's usual order; Java prints DNs the other way round
    # (RFC 2253: "CN=admin,O=..."), which is what Kafka's principal mapping rules see.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, is_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not is_ca,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )
