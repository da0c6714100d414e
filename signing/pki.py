"""The platform's own PKI: root CA, issuing CA, timestamp-authority certificate, event certificates, CRLs.

Layout of the PKI directory (all keys PEM, PKCS#8, encrypted with the master secret)::

    root.key.pem / root.crt.pem          self-signed root (20 years), published for download
    issuing.key.pem / issuing.crt.pem    issuing CA (10 years) that signs the event certificates
    tsa.key.pem / tsa.crt.pem            RFC 3161 timestamp authority (10 years), issued by the root
    revocations.json                     revoked serials (issuing-CA CRL) and revoked CA serials (root CRL)

Event certificates follow DOMAIN.md §3: one fresh ECDSA P-256 key and a one-day certificate per
signing, issued after the caller has confirmed identity and intent. The key exists only inside the
returned :class:`EventCredential` and is never written anywhere. A signature made with it stays
valid after the certificate expires because it carries an RFC 3161 timestamp taken while the
certificate was valid; :func:`signing.verify.verify_pdf` validates at the timestamp's time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import certbuild as cb
from .errors import PKIError

__all__ = ["EventCredential", "PlatformPKI"]

_UTC = dt.UTC
_CRL_REFRESH_BEFORE = dt.timedelta(days=1)
EVENT_CERT_LIFETIME = dt.timedelta(days=1)
"""Validity of an event certificate; the timestamp keeps signatures verifiable afterwards."""


@dataclass(frozen=True)
class EventCredential:
    """A fresh key and its short-lived certificate for exactly one signing operation.

    Attributes:
        private_key: the ECDSA P-256 key; drop the object after signing.
        certificate: the event certificate issued by the issuing CA.
        chain: issuing CA certificate then root certificate (for embedding in the signature).
    """

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def serial(self) -> int:
        """Serial number of the event certificate (store it with the audit event)."""
        return self.certificate.serial_number


class PlatformPKI:
    """Root CA, issuing CA and TSA key material of one platform, plus revocation state.

    Build it with :meth:`create`, :meth:`load` or :meth:`from_pkcs12`; keys are parsed once and
    kept for the life of the process (sign many agreements with one instance).
    """

    def __init__(
        self,
        *,
        root_cert: x509.Certificate,
        issuing_cert: x509.Certificate,
        issuing_key: ec.EllipticCurvePrivateKey,
        tsa_cert: x509.Certificate,
        tsa_key: ec.EllipticCurvePrivateKey,
        crl_url: str,
        root_key: ec.EllipticCurvePrivateKey | None = None,
        directory: Path | None = None,
    ) -> None:
        self.root_cert = root_cert
        self.issuing_cert = issuing_cert
        self.tsa_cert = tsa_cert
        self.crl_url = crl_url
        self._issuing_key = issuing_key
        self._tsa_key = tsa_key
        self._root_key = root_key
        self._directory = directory
        self._lock = threading.Lock()
        self._revoked: dict[int, dt.datetime] = {}
        self._revoked_cas: dict[int, dt.datetime] = {}
        self._revocations_mtime: float | None = None
        self._crl_cache: tuple[frozenset[int], dt.datetime, bytes] | None = None
        self._root_crl_cache: tuple[frozenset[int], dt.datetime, bytes] | None = None
        self._load_revocations()

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        directory: Path,
        master_secret: str,
        org_name: str,
        crl_url: str,
        *,
        root_crl_url: str | None = None,
    ) -> PlatformPKI:
        """Create the PKI in ``directory`` – or load it if it already exists (idempotent).

        ``crl_url`` is written as CRL distribution point into every event certificate;
        ``root_crl_url`` (optional) into the issuing CA and TSA certificates.
        """
        directory = Path(directory)
        if (directory / "root.crt.pem").exists():
            return cls.load(directory, master_secret, crl_url=crl_url)
        if not master_secret:
            raise PKIError("master secret must not be empty")
        directory.mkdir(parents=True, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = cb.build_cert(
            cb.name(org_name, f"{org_name} Root CA"),
            root_key.public_key(),
            None,
            root_key,
            dt.timedelta(days=365 * 20),
            ca_path=1,
        )
        iss_key = ec.generate_private_key(ec.SECP256R1())
        iss = cb.build_cert(
            cb.name(org_name, f"{org_name} Issuing CA"),
            iss_key.public_key(),
            root,
            root_key,
            dt.timedelta(days=365 * 10),
            ca_path=0,
            crl_url=root_crl_url,
        )
        tsa_key = ec.generate_private_key(ec.SECP256R1())
        tsa = cb.build_cert(
            cb.name(org_name, f"{org_name} Timestamp Authority"),
            tsa_key.public_key(),
            root,
            root_key,
            dt.timedelta(days=365 * 10),
            ca_path=None,
            eku=[ExtendedKeyUsageOID.TIME_STAMPING],
            crl_url=root_crl_url,
        )
        enc = serialization.BestAvailableEncryption(master_secret.encode())
        for stem, key, cert in (("root", root_key, root), ("issuing", iss_key, iss), ("tsa", tsa_key, tsa)):
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
            cb.write_private(directory / f"{stem}.key.pem", key_pem)
            (directory / f"{stem}.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / "pki.json").write_text(json.dumps({"crl_url": crl_url, "org_name": org_name}))
        return cls(
            root_cert=root,
            issuing_cert=iss,
            issuing_key=iss_key,
            tsa_cert=tsa,
            tsa_key=tsa_key,
            crl_url=crl_url,
            root_key=root_key,
            directory=directory,
        )

    @classmethod
    def load(cls, directory: Path, master_secret: str, *, crl_url: str | None = None) -> PlatformPKI:
        """Load a PKI created by :meth:`create`; a wrong master secret raises :class:`PKIError`."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "pki.json").read_text())
            certs = {
                s: x509.load_pem_x509_certificate((directory / f"{s}.crt.pem").read_bytes())
                for s in ("root", "issuing", "tsa")
            }
        except (OSError, ValueError) as exc:
            raise PKIError(f"PKI directory {directory} is missing or damaged: {exc}") from exc
        keys = {s: cb.load_key(directory / f"{s}.key.pem", master_secret) for s in ("root", "issuing", "tsa")}
        return cls(
            root_cert=certs["root"],
            issuing_cert=certs["issuing"],
            issuing_key=keys["issuing"],
            tsa_cert=certs["tsa"],
            tsa_key=keys["tsa"],
            root_key=keys["root"],
            crl_url=crl_url or meta["crl_url"],
            directory=directory,
        )

    @classmethod
    def from_pkcs12(
        cls,
        p12_bytes: bytes,
        password: str,
        *,
        crl_url: str,
        tsa_p12: bytes | None = None,
        tsa_password: str | None = None,
        tsa_directory: Path | None = None,
        master_secret: str = "",
    ) -> PlatformPKI:
        """Use a deployer's issuing CA from a PKCS#12 file (key + cert + chain up to the root).

        The TSA key comes from ``tsa_p12`` if given. Otherwise the issuing CA issues the platform's
        timestamp certificate itself (timeStamping EKU: the CA certificate cannot sign timestamps
        that validate). With ``tsa_directory`` it is kept there, the key encrypted with
        ``master_secret``, and reused by every process; without, each process issues its own.
        Without the root key, the root CRL cannot be produced here (``root_crl_der`` raises).
        """
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(p12_bytes, password.encode())
        except ValueError as exc:
            raise PKIError(f"cannot open PKCS#12 (wrong password?): {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or cert is None:
            raise PKIError("PKCS#12 must hold an EC private key and its certificate")
        roots = [c for c in extra if c.issuer == c.subject]
        if not roots:
            raise PKIError("PKCS#12 must include the root certificate")
        if tsa_p12 is not None:
            tkey, tcert, _ = pkcs12.load_key_and_certificates(tsa_p12, (tsa_password or "").encode())
            if not isinstance(tkey, ec.EllipticCurvePrivateKey) or tcert is None:
                raise PKIError("TSA PKCS#12 must hold an EC private key and its certificate")
            tsa_cert, tsa_key = tcert, tkey
        else:
            tsa_cert, tsa_key = _issued_tsa(cert, key, tsa_directory, master_secret)
        return cls(
            root_cert=roots[0],
            issuing_cert=cert,
            issuing_key=key,
            tsa_cert=tsa_cert,
            tsa_key=tsa_key,
            crl_url=crl_url,
        )

    # ------------------------------------------------------------------ public material
    def root_cert_pem(self) -> bytes:
        """The root certificate, PEM – the file users download to trust our signatures."""
        return self.root_cert.public_bytes(serialization.Encoding.PEM)

    def root_cert_der(self) -> bytes:
        """The root certificate, DER."""
        return self.root_cert.public_bytes(serialization.Encoding.DER)

    @property
    def directory(self) -> Path | None:
        """Where the key files live (``None`` for a PKI loaded from PKCS#12)."""
        return self._directory

    @property
    def tsa_key(self) -> ec.EllipticCurvePrivateKey:
        """The TSA signing key (used by :class:`signing.tsa.LocalTimestampAuthority`)."""
        return self._tsa_key

    # ------------------------------------------------------------------ event certificates
    def issue_event_certificate(
        self, common_name: str, subject_id: str, agreement_no: str, role: str
    ) -> EventCredential:
        """Issue a fresh key and a one-day certificate for one signing act.

        ``subject_id`` must already be masked (ID number) or be the public credit code;
        ``role`` is the party (student/school/employer) and goes into the subject's title.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"Agreement {agreement_no}"),
                x509.NameAttribute(NameOID.TITLE, role),
                # UTF8String: a masked ID ("3601**********1234") is not a valid PrintableString
                x509.NameAttribute(NameOID.SERIAL_NUMBER, subject_id, _type=_ASN1Type.UTF8String),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        cert = cb.build_cert(
            subject,
            key.public_key(),
            self.issuing_cert,
            self._issuing_key,
            EVENT_CERT_LIFETIME,
            ca_path=None,
            crl_url=self.crl_url,
        )
        return EventCredential(private_key=key, certificate=cert, chain=(self.issuing_cert, self.root_cert))

    # ------------------------------------------------------------------ revocation
    def revoke(self, serial: int, *, when: dt.datetime | None = None) -> None:
        """Revoke a certificate by serial. The issuing CA's own serial goes into the root CRL.

        ``when`` is the revocation (compromise) time, default now.
        """
        when = (when or cb.now()).astimezone(_UTC)
        with self._lock:
            self._load_revocations()
            if serial == self.issuing_cert.serial_number or serial == self.tsa_cert.serial_number:
                self._revoked_cas[serial] = when
            else:
                self._revoked[serial] = when
            self._save_revocations()

    def is_revoked(self, serial: int) -> bool:
        """True if ``serial`` has been revoked (event certificate or CA)."""
        self._load_revocations()
        return serial in self._revoked or serial in self._revoked_cas

    def crl_der(self) -> bytes:
        """The issuing CA's CRL (DER); cached, rebuilt when revocations change or it nears nextUpdate."""
        with self._lock:
            self._load_revocations()
            self._crl_cache = self._fresh_crl(self._crl_cache, self._revoked, self.issuing_cert, self._issuing_key)
            return self._crl_cache[2]

    def root_crl_der(self) -> bytes:
        """The root CA's CRL (DER), listing revoked issuing-CA/TSA certificates."""
        if self._root_key is None:
            raise PKIError("the root key is not available in this PKI (loaded from PKCS#12)")
        with self._lock:
            self._load_revocations()
            self._root_crl_cache = self._fresh_crl(
                self._root_crl_cache, self._revoked_cas, self.root_cert, self._root_key
            )
            return self._root_crl_cache[2]

    def all_crls_der(self) -> list[bytes]:
        """Every CRL this PKI can produce (issuing CA, and root if the root key is present)."""
        crls = [self.crl_der()]
        if self._root_key is not None:
            crls.append(self.root_crl_der())
        return crls

    @staticmethod
    def _fresh_crl(
        cache: tuple[frozenset[int], dt.datetime, bytes] | None,
        revoked: dict[int, dt.datetime],
        issuer: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
    ) -> tuple[frozenset[int], dt.datetime, bytes]:
        serials = frozenset(revoked)
        if cache and cache[0] == serials and cache[1] - cb.now() > _CRL_REFRESH_BEFORE:
            return cache
        return serials, cb.now() + cb.CRL_LIFETIME, cb.build_crl(issuer, key, revoked)

    def _load_revocations(self) -> None:
        if self._directory is None:
            return
        path = self._directory / "revocations.json"
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == self._revocations_mtime:
            return
        data = json.loads(path.read_text())
        self._revoked = {int(k): dt.datetime.fromisoformat(v) for k, v in data.get("certs", {}).items()}
        self._revoked_cas = {int(k): dt.datetime.fromisoformat(v) for k, v in data.get("cas", {}).items()}
        self._revocations_mtime = mtime

    def _save_revocations(self) -> None:
        if self._directory is None:
            return
        path = self._directory / "revocations.json"
        data = {
            "certs": {str(k): v.isoformat() for k, v in self._revoked.items()},
            "cas": {str(k): v.isoformat() for k, v in self._revoked_cas.items()},
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        self._revocations_mtime = path.stat().st_mtime


def _issued_tsa(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    directory: Path | None,
    master_secret: str,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The timestamp certificate a deployer's issuing CA issues for the platform (PKCS#12 mode):
    loaded from ``directory`` when it was issued by this CA before, else issued (and kept there)."""
    if directory is None:
        return _new_tsa(issuer, issuer_key)
    cert_path, key_path = directory / "p12-tsa.crt.pem", directory / "p12-tsa.key.pem"
    if cert_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.issuer == issuer.subject and cert.not_valid_after_utc > cb.now() + dt.timedelta(days=30):
            return cert, cb.load_key(key_path, master_secret)
    if not master_secret:
        raise PKIError("master secret must not be empty (it encrypts the timestamp key)")
    cert, key = _new_tsa(issuer, issuer_key)
    enc = serialization.BestAvailableEncryption(master_secret.encode())
    directory.mkdir(parents=True, exist_ok=True)
    cb.write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _new_tsa(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    orgs = issuer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org = str(orgs[0].value) if orgs else "tripact"
    key = ec.generate_private_key(ec.SECP256R1())
    lifetime = min(dt.timedelta(days=365 * 10), issuer.not_valid_after_utc - cb.now())
    cert = cb.build_cert(cb.name(org, f"{org} Timestamp Authority"), key.public_key(), issuer, issuer_key,
                         lifetime, ca_path=None, eku=[ExtendedKeyUsageOID.TIME_STAMPING])
    return cert, key
