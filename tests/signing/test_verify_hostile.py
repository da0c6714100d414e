"""Verification against files built to fool it or to exhaust it (findings of a review).

Each file here is made with pyHanko's own writer, the way an attacker with the genuine PDF would.
"""

from __future__ import annotations

import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import ArrayObject, DictionaryObject, FloatObject, NumberObject, pdf_name, pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers

from signing import AgreementSigner, PlatformPKI, exit_code, render_agreement, verify_pdf
from signing import verify_texts as T
from signing.tsa import LocalTimestampAuthority, LocalTimeStamper

from .helpers import SHORT_CODE, VERIFY_URL, make_agreement, sign_all


def _verify(pdf: bytes, pki: PlatformPKI) -> object:
    return verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der())


def _problems(report: object) -> str:
    return "; ".join(en for _zh, en in report.problems)  # type: ignore[attr-defined]


def _overlay_field(pdf: bytes) -> bytes:
    """An incremental update adding an (unsigned) signature field whose appearance paints white over
    part of the first page and prints a new salary: pyHanko rates it "form filling"."""
    w = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    page_ref = w.root["/Pages"]["/Kids"][0]
    font = DictionaryObject({pdf_name("/Type"): pdf_name("/Font"), pdf_name("/Subtype"): pdf_name("/Type1"),
                             pdf_name("/BaseFont"): pdf_name("/Helvetica")})
    appearance = generic.StreamObject(
        {pdf_name("/Type"): pdf_name("/XObject"), pdf_name("/Subtype"): pdf_name("/Form"),
         pdf_name("/BBox"): ArrayObject([NumberObject(0), NumberObject(0), NumberObject(350), NumberObject(50)]),
         pdf_name("/Resources"): DictionaryObject(
             {pdf_name("/Font"): DictionaryObject({pdf_name("/Helv"): w.add_object(font)})})},
        stream_data=b"1 1 1 rg 0 0 350 50 re f 0 0 0 rg BT /Helv 24 Tf 10 10 Td (SALARY 99999) Tj ET")
    field = w.add_object(DictionaryObject({
        pdf_name("/FT"): pdf_name("/Sig"), pdf_name("/T"): pdf_string("Overlay"), pdf_name("/Type"): pdf_name("/Annot"),
        pdf_name("/Subtype"): pdf_name("/Widget"), pdf_name("/F"): NumberObject(4), pdf_name("/P"): page_ref,
        pdf_name("/Rect"): ArrayObject([FloatObject(x) for x in (50, 400, 400, 450)]),
        pdf_name("/AP"): DictionaryObject({pdf_name("/N"): w.add_object(appearance)})}))
    page = page_ref.get_object()
    annots = page.get("/Annots")
    if annots is None:
        page[pdf_name("/Annots")] = ArrayObject([field])
    else:
        annots.get_object().append(field)
        if isinstance(page.raw_get("/Annots"), generic.IndirectObject):
            w.mark_update(page.raw_get("/Annots"))
    w.update_container(page)
    acroform = w.root["/AcroForm"]
    acroform["/Fields"].append(field)
    if isinstance(w.root.raw_get("/AcroForm"), generic.IndirectObject):
        w.mark_update(w.root.raw_get("/AcroForm"))
    else:
        w.update_root()
    if isinstance(acroform.raw_get("/Fields"), generic.IndirectObject):
        w.mark_update(acroform.raw_get("/Fields"))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_an_overlay_after_the_final_timestamp_is_tampering(completed: bytes, pki: PlatformPKI) -> None:
    report = _verify(_overlay_field(completed), pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.MODIFIED_AFTER_FINAL[1] in _problems(report)
    stamp = next(s for s in report.signatures if s.kind == "document_timestamp")  # type: ignore[attr-defined]
    assert not stamp.ok


def test_an_overlay_after_the_last_signature_of_an_unfinished_agreement_is_tampering(
    stages: dict[str, bytes], pki: PlatformPKI
) -> None:
    report = _verify(_overlay_field(stages["school"]), pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert "Sig_School: " + T.MODIFIED_AFTER_FINAL[1] in _problems(report)


def test_signatures_added_one_after_another_stay_valid(stages: dict[str, bytes], pki: PlatformPKI) -> None:
    for stage in ("student", "school", "employer"):
        report = _verify(stages[stage], pki)
        assert report.ok, (stage, report.reason_en)  # type: ignore[attr-defined]


def test_a_document_timestamp_alone_is_not_a_signed_agreement(pki: PlatformPKI) -> None:
    """Anyone can get a timestamp for any file from the public /tsa."""
    forged = render_agreement(make_agreement(monthly_salary_fen=99_999_900), VERIFY_URL, SHORT_CODE)
    stamper = signers.PdfTimeStamper(LocalTimeStamper(LocalTimestampAuthority(pki)), field_name="DocTimestamp")
    pdf = stamper.timestamp_pdf(IncrementalPdfFileWriter(io.BytesIO(forged)), "sha256").getvalue()
    report = _verify(pdf, pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.NO_PARTY_SIGNATURE[1] in _problems(report)


def test_a_spliced_revision_is_blamed_on_the_signature_that_does_not_belong(
    stages: dict[str, bytes], signer: AgreementSigner, pki: PlatformPKI
) -> None:
    other = sign_all(signer, make_agreement(agreement_no="2026104033100099"), finalize=False)
    spliced = stages["student"] + other["school"][len(other["student"]):]
    report = _verify(spliced, pki)
    assert exit_code(report) == 1  # type: ignore[arg-type]
    student, school = report.signatures  # type: ignore[attr-defined]
    assert student.ok and not school.ok
    assert "Sig_School: " + T.OTHER_AGREEMENT[1] in _problems(report)


def test_an_xref_claiming_millions_of_objects_is_refused_at_once(pki: PlatformPKI) -> None:
    body = (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n")
    pdf = (body + b"3 0 obj\n<< /Type /XRef /Size 10000000 /W [0 0 0] /Index [0 10000000] /Root 1 0 R "
           b"/Length 0 >>\nstream\n\nendstream\nendobj\n" + b"startxref\n%d\n%%%%EOF\n" % len(body))
    report = _verify(pdf, pki)  # read before: 28 s and 2 GB
    assert exit_code(report) == 2  # type: ignore[arg-type]
    assert T.TOO_COMPLEX[1] in report.reason_en  # type: ignore[attr-defined]


def test_thousands_of_fields_pointing_at_one_signature_are_refused(completed: bytes, pki: PlatformPKI) -> None:
    w = IncrementalPdfFileWriter(io.BytesIO(completed), strict=False)
    acroform = w.root["/AcroForm"]
    first = acroform["/Fields"][0].get_object()
    for i in range(2000):
        acroform["/Fields"].append(w.add_object(DictionaryObject({
            pdf_name("/FT"): pdf_name("/Sig"), pdf_name("/T"): pdf_string(f"S{i}"),
            pdf_name("/V"): first.raw_get("/V")})))
    if isinstance(acroform.raw_get("/Fields"), generic.IndirectObject):
        w.mark_update(acroform.raw_get("/Fields"))
    if isinstance(w.root.raw_get("/AcroForm"), generic.IndirectObject):
        w.mark_update(w.root.raw_get("/AcroForm"))
    else:
        w.update_root()
    out = io.BytesIO()
    w.write(out)
    report = _verify(out.getvalue(), pki)  # checked before: 116 s, quadratic in the fields
    assert exit_code(report) == 1  # type: ignore[arg-type]
    assert T.TOO_COMPLEX[1] in _problems(report)


def test_a_signature_by_a_certificate_out_of_its_validity_says_so(stages: dict[str, bytes], pki: PlatformPKI) -> None:
    """Review finding: an expired event certificate was reported as "does not chain to our root"."""
    import datetime as dt

    from asn1crypto import keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from pyhanko.sign import fields
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from signing import certbuild

    def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    now = dt.datetime.now(dt.UTC)
    for not_before, not_after in ((now - dt.timedelta(days=2), now - dt.timedelta(days=1)),
                                  (now + dt.timedelta(days=1), now + dt.timedelta(days=2))):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "学生")]))
                .issuer_name(pki.issuing_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(certbuild.key_usage(sign=True), critical=True)
                .sign(pki._issuing_key, hashes.SHA256()))  # a CA-side forgery: the test needs the key
        signer = signers.SimpleSigner(
            signing_cert=asn1(cert),
            signing_key=keys.PrivateKeyInfo.load(key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
            cert_registry=SimpleCertificateStore.from_certs([asn1(pki.issuing_cert), asn1(pki.root_cert)]))
        meta = signers.PdfSignatureMetadata(field_name="Sig_Student", subfilter=fields.SigSeedSubFilter.PADES)
        pdf = signers.PdfSigner(meta, signer, timestamper=LocalTimeStamper(LocalTimestampAuthority(pki))).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(stages["rendered"]))).getvalue()
        report = _verify(pdf, pki)
        assert T.OUT_OF_VALIDITY[1] in _problems(report) and T.UNTRUSTED[1] not in _problems(report)
