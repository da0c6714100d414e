"""RFC 3161: the built-in authority, the in-process stamper and the external one with its fallback."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asn1crypto import algos, cms, tsp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.general import as_signing_certificate_v2

from signing import (
    AgreementSigner,
    ExternalTimestamper,
    LocalTimestampAuthority,
    LocalTimeStamper,
    PlatformPKI,
    TimestampError,
    render_agreement,
    verify_pdf,
)
from signing import verify_texts as T
from signing.tsa import TSA_POLICY_OID, response_status

from .helpers import IDENTITIES, IMAGES, SHORT_CODE, VERIFY_URL, make_agreement


def _request(digest: bytes = b"\x01" * 32, algo: str = "sha256", nonce: int | None = 42) -> bytes:
    req = {
        "version": 1,
        "cert_req": True,
        "message_imprint": tsp.MessageImprint(
            {"hash_algorithm": algos.DigestAlgorithm({"algorithm": algo}), "hashed_message": digest}
        ),
    }
    if nonce is not None:
        req["nonce"] = nonce
    return tsp.TimeStampReq(req).dump()


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"hello", b"\x30\x03\x02\x01\x01", _request()[:-5]])
def test_garbage_request_gets_a_rejection_response(pki: PlatformPKI, garbage: bytes) -> None:
    status, fail = response_status(LocalTimestampAuthority(pki).respond(garbage))
    assert status == "rejection" and fail == {"bad_request"}


def _with_extension(critical: bool) -> bytes:
    req = tsp.TimeStampReq.load(_request())
    req["extensions"] = tsp.Extensions(
        [{"extn_id": "1.2.3.4.5", "critical": critical, "extn_value": b"\x05\x00"}])
    return req.dump(force=True)


def test_requests_rfc_3161_says_to_refuse_are_refused(pki: PlatformPKI) -> None:
    """Review finding: version 99, extensions, trailing data and BER forms were all granted."""
    tsa = LocalTimestampAuthority(pki)
    good = _request()
    assert response_status(tsa.respond(good))[0] == "granted"
    v99 = tsp.TimeStampReq.load(good)
    v99["version"] = 99
    assert response_status(tsa.respond(v99.dump(force=True))) == ("rejection", {"bad_request"})
    assert response_status(tsa.respond(good + b"\x00\x00")) == ("rejection", {"bad_request"})
    indefinite = b"\x30\x80" + good[2:] + b"\x00\x00"  # the same request, BER indefinite length
    assert response_status(tsa.respond(indefinite)) == ("rejection", {"bad_request"})
    for critical in (True, False):
        assert response_status(tsa.respond(_with_extension(critical))) == ("rejection", {"unaccepted_extensions"})


def test_wrong_digest_length_and_algorithm_are_rejected(pki: PlatformPKI) -> None:
    tsa = LocalTimestampAuthority(pki)
    assert response_status(tsa.respond(_request(digest=b"\x01" * 20))) == ("rejection", {"bad_data_format"})
    assert response_status(tsa.respond(_request(digest=b"\x01" * 16, algo="md5"))) == (
        "rejection",
        {"bad_alg"},
    )


def test_valid_request_is_granted_with_nonce_and_imprint(pki: PlatformPKI) -> None:
    resp = tsp.TimeStampResp.load(LocalTimestampAuthority(pki).respond(_request(nonce=1234)))
    assert resp["status"]["status"].native == "granted"
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert info["nonce"].native == 1234
    assert info["message_imprint"]["hashed_message"].native == b"\x01" * 32
    subjects = [c.chosen.subject for c in resp["time_stamp_token"]["content"]["certificates"]]
    assert LocalTimestampAuthority(pki).tsa_cert.subject in subjects


class _TSAHandler(BaseHTTPRequestHandler):
    authority: LocalTimestampAuthority

    def do_POST(self) -> None:  # noqa: N802 – http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = self.authority.respond(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def external_tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PlatformPKI]]:
    """A separate platform's TSA served over HTTP on localhost, playing the external authority."""
    other = PlatformPKI.create(tmp_path_factory.mktemp("ext"), "x", "外部时间戳中心", "http://x/crl")
    handler = type("H", (_TSAHandler,), {"authority": LocalTimestampAuthority(other)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tsa", other
    server.shutdown()
    server.server_close()


def _sign_student(signer: AgreementSigner) -> tuple[bytes, bool, str]:
    pdf = render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE)
    result = signer.sign_party(pdf, "student", IDENTITIES["student"]("2026104033100042"), IMAGES["student"])
    return result.pdf, result.used_fallback, result.timestamp_authority


def test_external_tsa_is_used_when_it_answers(pki: PlatformPKI, external_tsa: tuple[str, PlatformPKI]) -> None:
    url, other = external_tsa
    stamper = ExternalTimestamper(url, timeout=2, fallback=LocalTimeStamper(LocalTimestampAuthority(pki)))
    pdf, fallback, authority = _sign_student(AgreementSigner(pki, stamper))
    assert not fallback and not stamper.last_used_fallback
    assert "外部时间戳中心" in authority
    report = verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der(), tsa_trust_roots=[other.root_cert])
    assert report.ok, report.reason_en
    # without the external TSA's root its timestamps are untrusted
    assert T.BAD_TIMESTAMP[1] in verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der()).reason_en
    # and that root only ever vouches for timestamps: a signature from its CA is not trusted
    # (review finding: with the root among trust_roots, it was)
    forged, _fallback, _authority = _sign_student(AgreementSigner(other))
    report = verify_pdf(forged, [pki.root_cert], crls=pki.all_crls_der(), tsa_trust_roots=[other.root_cert])
    assert not report.ok and T.UNTRUSTED[1] in report.reason_en


def test_unreachable_external_tsa_falls_back_to_the_local_authority(pki: PlatformPKI) -> None:
    stamper = ExternalTimestamper(
        "http://127.0.0.1:9/tsa", timeout=0.5, fallback=LocalTimeStamper(LocalTimestampAuthority(pki))
    )
    pdf, fallback, authority = _sign_student(AgreementSigner(pki, stamper))
    assert fallback and stamper.last_used_fallback and stamper.fallback_count >= 1
    assert "tripact 测试平台 Timestamp Authority" in authority
    assert verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der()).ok


def test_unreachable_external_tsa_without_fallback_is_a_timestamp_error(pki: PlatformPKI) -> None:
    stamper = ExternalTimestamper("http://127.0.0.1:9/tsa", timeout=0.5, fallback=None)
    with pytest.raises(TimestampError):
        _sign_student(AgreementSigner(pki, stamper))


def _reference_token(
    authority: LocalTimestampAuthority, req: tsp.TimeStampReq, now: dt.datetime, serial: int, signature: bytes
) -> bytes:
    """The token as asn1crypto's object tree encodes it (the construction token_der replaces)."""
    from asn1crypto import cms, core
    from asn1crypto import x509 as asn1_x509

    def attr(kind: str, value: Any) -> cms.CMSAttribute:
        return cms.CMSAttribute({"type": kind, "values": [value]})

    info: dict[str, Any] = {
        "version": "v1",
        "policy": TSA_POLICY_OID,
        "message_imprint": req["message_imprint"],
        "serial_number": serial,
        "gen_time": now,
        "accuracy": {"seconds": 1},
        "tsa": asn1_x509.GeneralName(name="directory_name", value=authority.tsa_cert.subject),
    }
    if req["nonce"].native is not None:
        info["nonce"] = req["nonce"]
    tst_der = tsp.TSTInfo(info).dump()
    signed_attrs = cms.CMSAttributes(
        [
            attr("content_type", "tst_info"),
            attr("signing_time", cms.Time({"utc_time": core.UTCTime(now)})),
            attr("signing_certificate_v2", as_signing_certificate_v2(authority.tsa_cert)),
            attr("message_digest", hashlib.sha256(tst_der).digest()),
        ]
    )
    digest_algo = algos.DigestAlgorithm({"algorithm": "sha256"})
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {
                            "issuer": authority.tsa_cert.issuer,
                            "serial_number": authority.tsa_cert.serial_number,
                        }
                    )
                }
            ),
            "digest_algorithm": digest_algo,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signed_attrs": signed_attrs,
            "signature": signature,
        }
    )
    sd: dict[str, Any] = {
        "version": "v3",
        "digest_algorithms": [digest_algo],
        "encap_content_info": {"content_type": "tst_info", "content": cms.ParsableOctetString(tst_der)},
        "signer_infos": [signer_info],
    }
    if req["cert_req"].native:
        sd["certificates"] = [authority.tsa_cert, authority.root_cert]
    token: bytes = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(sd)}).dump()
    return token


@pytest.mark.parametrize("nonce", [None, 7, 2**70])
@pytest.mark.parametrize("cert_req", [True, False])
def test_token_bytes_match_the_asn1crypto_construction(pki: PlatformPKI, nonce: int | None, cert_req: bool) -> None:
    authority = LocalTimestampAuthority(pki)
    raw = tsp.TimeStampReq.load(_request(nonce=nonce))
    fields: dict[str, Any] = {"version": 1, "cert_req": cert_req, "message_imprint": raw["message_imprint"]}
    if nonce is not None:
        fields["nonce"] = nonce
    req = tsp.TimeStampReq.load(tsp.TimeStampReq(fields).dump())
    now = dt.datetime(2026, 12, 4, 16, 5, 7, 123_000, tzinfo=dt.UTC)
    der = authority.token_der(req, now, 123456789)
    token = cms.ContentInfo.load(der)
    signer_info = token["content"]["signer_infos"][0]
    assert der == _reference_token(authority, req, now, 123456789, signer_info["signature"].native)
    attrs = signer_info["signed_attrs"].untag().dump()
    pki.tsa_cert.public_key().verify(  # type: ignore[union-attr, call-arg]
        signer_info["signature"].native,
        attrs,
        ec.ECDSA(hashes.SHA256()),  # type: ignore[arg-type]
    )


def test_credentials_in_the_external_tsa_url_stay_out_of_logs_and_errors(
    pki: PlatformPKI, caplog: pytest.LogCaptureFixture
) -> None:
    stamper = ExternalTimestamper(
        "http://tsauser:S3cretPw@127.0.0.1:9/tsa", timeout=0.5, fallback=LocalTimeStamper(LocalTimestampAuthority(pki))
    )
    with caplog.at_level("WARNING"):
        _sign_student(AgreementSigner(pki, stamper))
    assert stamper.last_used_fallback
    assert "S3cretPw" not in caplog.text and "S3cretPw" not in stamper.last_error
    assert "http://***@127.0.0.1:9/tsa" in caplog.text
