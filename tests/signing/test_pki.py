"""The platform PKI: encrypted keys, idempotent creation, event certificates, CRLs."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from signing import PKIError, PlatformPKI

from .helpers import MASTER_SECRET


def test_wrong_master_secret_is_a_pki_error(pki: PlatformPKI, tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    PlatformPKI.create(directory, MASTER_SECRET, "测试", "http://x/crl")
    with pytest.raises(PKIError, match="master secret"):
        PlatformPKI.load(directory, "wrong")


def test_missing_directory_is_a_pki_error(tmp_path: Path) -> None:
    with pytest.raises(PKIError):
        PlatformPKI.load(tmp_path / "absent", MASTER_SECRET)


def test_create_is_idempotent_and_keys_are_encrypted(tmp_path: Path) -> None:
    first = PlatformPKI.create(tmp_path, MASTER_SECRET, "测试", "http://x/crl")
    second = PlatformPKI.create(tmp_path, MASTER_SECRET, "测试", "http://x/crl")
    assert first.root_cert_der() == second.root_cert_der()
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "issuing.key.pem").read_bytes()
    assert (tmp_path / "issuing.key.pem").stat().st_mode & 0o077 == 0


def test_event_certificate_carries_the_party(pki: PlatformPKI) -> None:
    cred = pki.issue_event_certificate("李𠇔䶮", "3601**********1234", "2026104033100042", "student")
    cert = cred.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "李𠇔䶮"
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "3601**********1234"
    assert "2026104033100042" in cert.subject.rfc4514_string()
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment and not ku.key_cert_sign
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name[0].value == pki.crl_url
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 1
    assert cert.issuer == pki.issuing_cert.subject
    assert pki.issue_event_certificate("a", "b", "c", "school").serial != cred.serial


def test_revocation_appears_in_the_crl(tmp_path: Path) -> None:
    pki = PlatformPKI.create(tmp_path, MASTER_SECRET, "测试", "http://x/crl")
    serial = pki.issue_event_certificate("a", "b", "c", "student").serial
    before = x509.load_der_x509_crl(pki.crl_der())
    assert before.get_revoked_certificate_by_serial_number(serial) is None
    assert pki.crl_der() == pki.crl_der(), "unchanged CRL is cached"
    pki.revoke(serial)
    after = x509.load_der_x509_crl(pki.crl_der())
    assert after.get_revoked_certificate_by_serial_number(serial) is not None
    assert after.is_signature_valid(pki.issuing_cert.public_key())  # type: ignore[arg-type]
    # persisted: another process loading the directory sees the revocation
    assert PlatformPKI.load(tmp_path, MASTER_SECRET).is_revoked(serial)


def test_revoking_the_issuing_ca_goes_into_the_root_crl(tmp_path: Path) -> None:
    pki = PlatformPKI.create(tmp_path, MASTER_SECRET, "测试", "http://x/crl")
    pki.revoke(pki.issuing_cert.serial_number)
    root_crl = x509.load_der_x509_crl(pki.root_crl_der())
    assert root_crl.get_revoked_certificate_by_serial_number(pki.issuing_cert.serial_number) is not None


def test_from_pkcs12_loads_a_deployers_issuing_ca(pki: PlatformPKI, tmp_path: Path) -> None:
    donor = PlatformPKI.create(tmp_path, MASTER_SECRET, "部署方", "http://x/crl")
    key = serialization.load_pem_private_key((tmp_path / "issuing.key.pem").read_bytes(), MASTER_SECRET.encode())
    p12 = pkcs12.serialize_key_and_certificates(
        b"issuing",
        key,
        donor.issuing_cert,
        [donor.root_cert],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(b"p12pass"),
    )
    loaded = PlatformPKI.from_pkcs12(p12, "p12pass", crl_url="http://y/crl")
    assert loaded.root_cert_der() == donor.root_cert_der()
    assert loaded.issue_event_certificate("a", "b", "c", "employer").certificate.issuer == donor.issuing_cert.subject
    with pytest.raises(PKIError):
        PlatformPKI.from_pkcs12(p12, "wrong", crl_url="http://y/crl")


def test_a_pkcs12_deployment_signs_agreements_that_verify(tmp_path: Path) -> None:
    """Review finding: without a TSA PKCS#12 the issuing CA certificate signed the timestamps, and it
    lacks the timeStamping EKU: no agreement ever verified. The CA now issues a TSA certificate,
    kept (encrypted) in the PKI folder and reused by the next process."""
    from signing import AgreementSigner, verify_pdf

    from .helpers import make_agreement, sign_all

    donor = PlatformPKI.create(tmp_path / "donor", MASTER_SECRET, "部署方", "http://x/crl")
    key = serialization.load_pem_private_key((tmp_path / "donor" / "issuing.key.pem").read_bytes(),
                                             MASTER_SECRET.encode())
    p12 = pkcs12.serialize_key_and_certificates(b"issuing", key, donor.issuing_cert,  # type: ignore[arg-type]
                                                [donor.root_cert], serialization.BestAvailableEncryption(b"pw"))
    folder = tmp_path / "instance-pki"
    pki = PlatformPKI.from_pkcs12(p12, "pw", crl_url="http://y/crl", tsa_directory=folder, master_secret="m")
    assert pki.tsa_cert.issuer == donor.issuing_cert.subject
    eku = pki.tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.TIME_STAMPING in eku
    report = verify_pdf(sign_all(AgreementSigner(pki), make_agreement())["final"], [pki.root_cert],
                        crls=pki.all_crls_der())
    assert report.ok, report.reason_en
    again = PlatformPKI.from_pkcs12(p12, "pw", crl_url="http://y/crl", tsa_directory=folder, master_secret="m")
    assert again.tsa_cert.serial_number == pki.tsa_cert.serial_number  # one TSA certificate, kept
    assert oct((folder / "p12-tsa.key.pem").stat().st_mode & 0o777) == "0o600"
