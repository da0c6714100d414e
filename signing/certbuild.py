"""Certificate, CRL and key-file helpers for :mod:`signing.pki` (cryptography only, no state)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import PKIError

CRL_LIFETIME = dt.timedelta(days=7)
"""nextUpdate of our CRLs; they are rebuilt a day before (see PlatformPKI.crl_der)."""


def now() -> dt.datetime:
    """Current UTC time (one place, so tests can reason about it)."""
    return dt.datetime.now(dt.UTC)


def name(org: str, cn: str, unit: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])


def key_usage(*, sign: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=sign and not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def build_cert(
    subject: x509.Name,
    pub: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    lifetime: dt.timedelta,
    *,
    ca_path: int | None,
    eku: list[x509.ObjectIdentifier] | None = None,
    crl_url: str | None = None,
) -> x509.Certificate:
    start = now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca_path is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=ca_path), critical=True)
        builder = builder.add_extension(key_usage(ca=True), critical=True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(key_usage(sign=True), critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    if crl_url:
        builder = builder.add_extension(crl_dp(crl_url), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def build_crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey, revoked: dict[int, dt.datetime]) -> bytes:
    """A DER CRL of ``issuer`` listing ``revoked`` (serial -> revocation time)."""
    start = now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(start - dt.timedelta(minutes=5))
        .next_update(start + CRL_LIFETIME)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(x509.CRLNumber(int(start.timestamp() * 1000)), critical=False)
    )
    for serial, when in sorted(revoked.items()):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_key(path: Path, master_secret: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), master_secret.encode())
    except OSError as exc:
        raise PKIError(f"cannot read key file {path}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise PKIError(f"cannot decrypt {path.name}: wrong master secret or damaged key file") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path.name} is not an EC key")
    return key
