"""RFC 3161 timestamps: the platform's built-in authority and an external one with a fallback.

* :class:`LocalTimestampAuthority` is a complete RFC 3161 authority running in-process with the
  platform TSA key (:class:`signing.pki.PlatformPKI`). ``respond(request_der)`` turns a DER
  ``TimeStampReq`` into a DER ``TimeStampResp`` – the web app mounts it at ``/tsa``
  (``Content-Type: application/timestamp-reply``). A malformed request gives a *rejection* response
  (``badRequest`` / ``badAlg``), never an exception.
* :class:`LocalTimeStamper` is the pyHanko ``TimeStamper`` that calls that authority directly
  (no HTTP): the default and the fast path.
* :class:`ExternalTimestamper` asks an external TSA over HTTP(S) with a bounded timeout and one
  shared ``requests`` session (hence one SSL context and kept-alive connections for the whole
  process). **Fallback**: if the external TSA fails – timeout, network error, HTTP error, rejection,
  or a response that does not match the request – the token is taken from the local authority
  instead, the event is logged at WARNING, ``last_used_fallback`` is set and ``fallback_count``
  increases. :class:`signing.sign.AgreementSigner` reports it per signature as
  ``SignResult.used_fallback`` (it checks which TSA signed the token), so the evidence report can
  say that the platform's own clock, not the external TSA, vouches for that signing time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import ssl
import urllib.parse
from typing import Any

import requests
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from requests.adapters import HTTPAdapter

from .pki import PlatformPKI

__all__ = [
    "TSA_POLICY_OID",
    "ExternalTimestamper",
    "LocalTimeStamper",
    "LocalTimestampAuthority",
    "response_status",
]

log = logging.getLogger(__name__)

TSA_POLICY_OID = "1.3.6.1.4.1.55555.1.1"
"""Policy OID written into our timestamp tokens (private arc; documented in the evidence report)."""

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _der(value: Any) -> bytes:
    der: bytes = value.dump()
    return der


def _attr(kind: str, value: Any) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": kind, "values": [value]})


class LocalTimestampAuthority:
    """An RFC 3161 timestamp authority backed by the platform TSA key; thread-safe."""

    def __init__(self, pki: PlatformPKI) -> None:
        self._key = pki.tsa_key
        # asn1crypto re-encodes parsed objects slowly (~60 ms per token): keep DER and load fresh
        # (lazily parsed) copies when building a token – they dump their original bytes untouched
        self._tsa_der = pki.tsa_cert.public_bytes(Encoding.DER)
        self._root_der = pki.root_cert_der()
        self.tsa_cert = asn1_x509.Certificate.load(self._tsa_der)
        self.root_cert = asn1_x509.Certificate.load(self._root_der)
        self._ess_der = as_signing_certificate_v2(self.tsa_cert).dump()
        self._tsa_name_der = asn1_x509.GeneralName(name="directory_name", value=self.tsa_cert.subject).dump()
        self._issuer_der = self.tsa_cert.issuer.dump()
        self._serial = self.tsa_cert.serial_number
        self._template_cache: dict[str, bytes] | None = None

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER ``TimeStampReq`` with a DER ``TimeStampResp`` (rejection on bad input)."""
        try:
            req = tsp.TimeStampReq.load(request_der)
            imprint = req["message_imprint"]
            algo = imprint["hash_algorithm"]["algorithm"].native
            digest = imprint["hashed_message"].native
            req["nonce"].native  # noqa: B018 – force a full parse of the optional fields
            version = req["version"].native
            extensions = req["extensions"].native
            strict = req.dump(force=True) == request_der  # DER only: no trailing data, no BER forms
        except Exception:  # asn1crypto raises a zoo of types on garbage – all mean the same here
            return _der(_rejection("bad_request", "malformed TimeStampReq"))
        if version != "v1" or not strict:
            return _der(_rejection("bad_request", "TimeStampReq must be version 1, in DER"))
        if extensions:  # RFC 3161 §2.4.2: an unrecognised extension must be rejected
            return _der(_rejection("unaccepted_extensions", "no request extensions are supported"))
        if algo not in _DIGEST_SIZES:
            return _der(_rejection("bad_alg", f"unsupported hash algorithm {algo}"))
        if not isinstance(digest, bytes) or len(digest) != _DIGEST_SIZES[algo]:
            return _der(_rejection("bad_data_format", "hashed message has the wrong length"))
        if req["req_policy"].native not in (None, TSA_POLICY_OID):
            return _der(_rejection("unaccepted_policy", "unknown policy"))
        try:
            return _der(self.timestamp_response(req))
        except Exception:  # never let the /tsa endpoint crash: answer systemFailure and log it
            log.exception("local TSA failed to issue a token")
            return _der(_rejection("system_failure", "timestamp authority failure"))

    def timestamp_response(self, req: tsp.TimeStampReq, *, at: dt.datetime | None = None) -> tsp.TimeStampResp:
        """Build a granted response for an already parsed and checked request."""
        token = self.token_der(req, at or dt.datetime.now(dt.UTC), secrets.randbits(63))
        return tsp.TimeStampResp.load(_tlv(0x30, _GRANTED + token))

    def token_der(self, req: tsp.TimeStampReq, now: dt.datetime, serial: int) -> bytes:
        """DER of the timestamp token (a CMS ContentInfo) for ``req``.

        Assembled from DER pieces: the fixed parts (algorithms, signer id, certificates, the ESS
        and content-type attributes, policy, accuracy, TSA name) are encoded once by asn1crypto
        in :meth:`_templates`; per token only the TSTInfo values and two attributes are encoded.
        Building the same structure through asn1crypto's object tree took ~2.5 ms per token; the
        bytes are the same (``tests/signing/test_tsa.py`` compares them with that construction).
        """
        t = self._templates()
        now = now.replace(microsecond=(now.microsecond // 1000) * 1000)
        nonce = req["nonce"]
        tst = _tlv(
            0x30,
            t["version"]
            + t["policy"]
            + req["message_imprint"].dump()
            + core.Integer(serial).dump()
            + core.GeneralizedTime(now).dump()
            + t["accuracy"]
            + (nonce.dump() if nonce.native is not None else b"")
            + t["tsa"],
        )
        attrs = b"".join(  # DER SET OF: elements sorted by their encoding (as asn1crypto does)
            sorted(
                [
                    t["content_type_attr"],
                    _attr("signing_time", cms.Time({"utc_time": core.UTCTime(now)})).dump(),
                    t["ess_attr"],
                    _attr("message_digest", hashlib.sha256(tst).digest()).dump(),
                ]
            )
        )
        signature = self._key.sign(_tlv(0x31, attrs), ec.ECDSA(hashes.SHA256()))
        signer_info = _tlv(
            0x30,
            t["v1"] + t["sid"] + t["digest_algo"] + _tlv(0xA0, attrs) + t["signature_algo"] + _tlv(0x04, signature),
        )
        encap = _tlv(0x30, t["tst_info_oid"] + _tlv(0xA0, _tlv(0x04, tst)))
        certs = t["certificates"] if req["cert_req"].native else b""  # RFC 3161 §2.4.1: only if asked
        signed_data = _tlv(0x30, t["v3"] + _tlv(0x31, t["digest_algo"]) + encap + certs + _tlv(0x31, signer_info))
        return _tlv(0x30, t["signed_data_oid"] + _tlv(0xA0, signed_data))

    def _templates(self) -> dict[str, bytes]:
        cached = self._template_cache
        if cached is None:
            name = asn1_x509.GeneralName.load(self._tsa_name_der)
            sid = cms.IssuerAndSerialNumber(
                {"issuer": asn1_x509.Name.load(self._issuer_der), "serial_number": self._serial}
            )
            cached = {
                "version": core.Integer(1).dump(),
                "v1": core.Integer(1).dump(),
                "v3": core.Integer(3).dump(),
                "policy": core.ObjectIdentifier(TSA_POLICY_OID).dump(),
                "accuracy": tsp.Accuracy({"seconds": 1}).dump(),
                "tsa": _tlv(0xA0, name.dump()),
                "content_type_attr": _attr("content_type", "tst_info").dump(),
                "ess_attr": _attr("signing_certificate_v2", tsp.SigningCertificateV2.load(self._ess_der)).dump(),
                "sid": cms.SignerIdentifier({"issuer_and_serial_number": sid}).dump(),
                "digest_algo": algos.DigestAlgorithm({"algorithm": "sha256"}).dump(),
                "signature_algo": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump(),
                "tst_info_oid": cms.ContentType("tst_info").dump(),
                "signed_data_oid": cms.ContentType("signed_data").dump(),
                "certificates": _tlv(0xA0, b"".join(sorted([self._tsa_der, self._root_der]))),
            }
            self._template_cache = cached
        return cached


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag byte, definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


_GRANTED = tsp.PKIStatusInfo({"status": "granted"}).dump()


class _TimeStampResp(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """TimeStampResp with an optional token (asn1crypto's class wrongly makes it mandatory)."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _rejection(fail: str, text: str) -> _TimeStampResp:
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({fail}),
        }
    )
    return _TimeStampResp({"status": status})


def response_status(response_der: bytes) -> tuple[str, set[str]]:
    """(status, failure bits) of a DER TimeStampResp – e.g. ``("rejection", {"bad_request"})``."""
    status = _TimeStampResp.load(response_der)["status"]
    fail = status["fail_info"].native
    return str(status["status"].native), set(fail or ())


class LocalTimeStamper(TimeStamper):
    """pyHanko ``TimeStamper`` that obtains tokens from a :class:`LocalTimestampAuthority` in-process."""

    def __init__(self, authority: LocalTimestampAuthority) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.authority = authority

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Answer in-process; the response is parsed from DER, so embedding it later copies its bytes."""
        return self.authority.timestamp_response(req)


class ExternalTimestamper(TimeStamper):
    """Timestamps from an external RFC 3161 TSA, falling back to the local authority on failure.

    Args:
        url: the TSA endpoint (``https://`` recommended).
        timeout: seconds for connect + read of one request (bounded; default 3 s).
        fallback: local timestamper used when the external TSA fails (``None`` = raise instead).
        auth: optional (user, password) for HTTP basic authentication.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 3.0,
        fallback: LocalTimeStamper | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(include_nonce=True)  # type: ignore[no-untyped-call]
        self.url = url
        self.timeout = timeout
        self.fallback = fallback
        self.last_used_fallback = False
        self.fallback_count = 0
        self.last_error: str | None = None
        self._session = requests.Session()
        self._session.auth = auth
        adapter = _SharedContextAdapter(ssl.create_default_context())
        self._session.mount("https://", adapter)
        self._session.mount("http://", HTTPAdapter())

    def _post(self, body: bytes) -> tsp.TimeStampResp:
        try:
            res = self._session.post(
                self.url,
                data=body,
                timeout=self.timeout,
                headers={"Content-Type": "application/timestamp-query"},
            )
            res.raise_for_status()
        except (OSError, requests.RequestException) as exc:
            raise TimestampRequestError(f"external TSA {_public(self.url)} unreachable: "
                                        f"{str(exc).replace(self.url, _public(self.url))}") from exc
        if res.headers.get("Content-Type") != "application/timestamp-reply":
            raise TimestampRequestError("external TSA answered with the wrong content type")
        return tsp.TimeStampResp.load(res.content)

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Blocking POST with a bounded timeout (one request at a time per signing)."""
        return self._post(req.dump())

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        """Ask the external TSA; on any failure use the fallback and record that it happened."""
        try:
            token = await super().async_timestamp(message_digest, md_algorithm)
        except Exception as exc:  # network, HTTP, ASN.1 and rejection errors all lead to the fallback
            if self.fallback is None:
                raise
            log.warning("external TSA %s failed (%s); using the local timestamp authority", _public(self.url),
                        str(exc).replace(self.url, _public(self.url)))
            self.last_used_fallback = True
            self.fallback_count += 1
            self.last_error = str(exc).replace(self.url, _public(self.url))
            return await self.fallback.async_timestamp(message_digest, md_algorithm)
        self.last_used_fallback = False
        return token


class _SharedContextAdapter(HTTPAdapter):
    """HTTPS adapter that reuses one SSL context (pyHanko's client builds one per request, ~11 ms)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def _public(url: str) -> str:
    """``url`` without the user:password@ part (the only way to give an external TSA credentials)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, "***@" + netloc, parts.path, parts.query, parts.fragment))
