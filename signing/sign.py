"""PAdES signatures on agreements: one visible signature per party, then long-term validation data.

Life of an agreement PDF (each step an incremental update; earlier revisions are never touched)::

    render_agreement()  ->  sign_party("student")  ->  sign_party("school")  ->  sign_party("employer")
                        ->  finalize()   (DSS with certificates + CRLs, then a document timestamp:
                                          PAdES B-LTA)

Each ``sign_party`` call issues an event certificate (fresh ECDSA P-256 key, one-day certificate),
signs PAdES B-T (signature timestamp) into the party's box of :data:`signing.render.SIGNATURE_BOXES`
with an appearance made of the party's image only (no text, no font), then forgets the key.
Parsed certificates, the timestamper and the validation context are built once per signer object:
keep one :class:`AgreementSigner` per process.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from PIL import Image
from pyhanko.pdf_utils import generic, layout
from pyhanko.pdf_utils.images import PdfImage, pil_image
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from . import _sync
from .errors import SignatureFailed, TimestampError
from .pki import PlatformPKI
from .render import SIGNATURE_BOXES, Party
from .tsa import ExternalTimestamper, LocalTimestampAuthority, LocalTimeStamper

__all__ = ["FIELD_NAMES", "PARTY_ORDER", "AgreementSigner", "SignResult", "SignerIdentity"]

PARTY_ORDER: tuple[Party, ...] = ("student", "school", "employer")
"""The only signing order accepted (DOMAIN.md §1: the school signs right after the student)."""

FIELD_NAMES: dict[str, str] = {
    "student": "Sig_Student",
    "school": "Sig_School",
    "employer": "Sig_Employer",
    "archive": "DocTimestamp",
    "evidence": "Sig_Platform",
}
"""Signature field names in the PDF, by party (plus the archive timestamp and the evidence seal)."""

_LOCAL_RESERVE = 12_288
_EXTERNAL_RESERVE = 24_576


@dataclass(frozen=True)
class SignerIdentity:
    """Who signs, as it goes into the event certificate and the signature dictionary.

    Attributes:
        name: person (student) or unit name (school, employer).
        subject_id: masked ID-card number (student) or unified social credit code (units).
        agreement_no: the agreement being signed.
        reason: optional /Reason text, e.g. "同意并签署就业协议".
        location: optional /Location text.
    """

    name: str
    subject_id: str
    agreement_no: str
    reason: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class SignResult:
    """Outcome of one signing call (store the serial and times with the audit event)."""

    pdf: bytes
    field_name: str
    certificate_serial: int
    signing_time: dt.datetime
    """Time from the signature timestamp token (trusted time)."""
    timestamp_authority: str
    """Subject of the TSA certificate that signed the token."""
    used_fallback: bool
    """True when an external TSA was configured but the local authority had to answer."""


def _asn1_cert(cert: Any) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class _RecordingTimeStamper(TimeStamper):
    """Per-call wrapper that remembers the token handed to pyHanko (thread-safe by construction)."""

    def __init__(self, inner: TimeStamper) -> None:
        super().__init__(include_nonce=inner.include_nonce)  # type: ignore[no-untyped-call]
        self.inner = inner
        self.token: cms.ContentInfo | None = None

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        token = await self.inner.async_timestamp(message_digest, md_algorithm)
        self.token = token
        return token

    async def async_dummy_response(self, md_algorithm: str) -> cms.ContentInfo:
        return await self.inner.async_dummy_response(md_algorithm)

    async def validation_paths(self, validation_context: ValidationContext) -> Any:
        async for path in self.inner.validation_paths(validation_context):  # type: ignore[no-untyped-call]
            yield path


def token_info(token: cms.ContentInfo) -> tuple[dt.datetime, asn1_x509.Certificate | None]:
    """(gen_time, TSA certificate) of an RFC 3161 token."""
    sd = token["content"]
    tst = sd["encap_content_info"]["content"].parsed
    sid = sd["signer_infos"][0]["sid"]
    tsa_cert = None
    if sid.name == "issuer_and_serial_number":
        serial = sid.chosen["serial_number"].native
        for choice in sd["certificates"] or ():
            if choice.name == "certificate" and choice.chosen.serial_number == serial:
                tsa_cert = choice.chosen
    gen_time: dt.datetime = tst["gen_time"].native
    return gen_time, tsa_cert


class AgreementSigner:
    """Signs agreements for the three parties and finalizes them (one instance per process).

    Args:
        pki: the platform PKI (issuing CA for event certificates, root and CRLs).
        timestamper: where signature and document timestamps come from; default the built-in
            :class:`~signing.tsa.LocalTimestampAuthority` (no network).
        bytes_reserved: room for each CMS object in the file (hex digits); default fits our
            certificates plus a token from the local TSA, or double that with an external TSA.
    """

    def __init__(
        self, pki: PlatformPKI, timestamper: TimeStamper | None = None, bytes_reserved: int | None = None
    ) -> None:
        self.pki = pki
        self.local_authority = LocalTimestampAuthority(pki)
        self.timestamper = timestamper or LocalTimeStamper(self.local_authority)
        external = isinstance(self.timestamper, ExternalTimestamper)
        self.bytes_reserved = bytes_reserved or (_EXTERNAL_RESERVE if external else _LOCAL_RESERVE)
        self.root = _asn1_cert(pki.root_cert)
        self.issuing = _asn1_cert(pki.issuing_cert)
        self.tsa = self.local_authority.tsa_cert
        self._chain_store = SimpleCertificateStore.from_certs([self.issuing, self.root])  # type: ignore[no-untyped-call]
        self._vc_cache: tuple[tuple[bytes, ...], ValidationContext] | None = None

    # ------------------------------------------------------------------ party signatures
    def sign_party(self, pdf: bytes, party: Party, signer: SignerIdentity, image_png: bytes) -> SignResult:
        """Add ``party``'s visible PAdES B-T signature (appearance = ``image_png`` only).

        Raises :class:`SignatureFailed` for an unknown party, a wrong order, a party that
        already signed, or a PDF pyHanko cannot update.
        """
        if party not in SIGNATURE_BOXES:
            raise SignatureFailed(f"unknown party {party!r}")
        writer = self._writer(pdf)
        self._check_order(writer, party)
        cms_signer = self._event_signer(signer.name, signer.subject_id, signer.agreement_no, party)
        page, *box = SIGNATURE_BOXES[party]
        field_name = FIELD_NAMES[party]
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=signer.reason,
            location=signer.location,
            name=signer.name,
        )
        recorder = _RecordingTimeStamper(self.timestamper)
        pdf_signer = signers.PdfSigner(
            meta,
            cms_signer,
            timestamper=recorder,
            stamp_style=_image_style(image_png),
            new_field_spec=fields.SigFieldSpec(field_name, on_page=page, box=(box[0], box[1], box[2], box[3])),
        )
        out = self._run(pdf_signer.async_sign_pdf(writer, bytes_reserved=self.bytes_reserved))
        if recorder.token is None:  # pragma: no cover – pyHanko always timestamps when given a stamper
            raise SignatureFailed("no signature timestamp was obtained")
        when, tsa_cert = token_info(recorder.token)
        cert_serial = cms_signer.signing_cert.serial_number  # type: ignore[union-attr]
        return SignResult(
            pdf=out.getvalue(),
            field_name=field_name,
            certificate_serial=int(cert_serial),
            signing_time=when,
            timestamp_authority=tsa_cert.subject.human_friendly if tsa_cert else "",
            used_fallback=self._is_fallback(tsa_cert),
        )

    def _event_signer(self, name: str, subject_id: str, agreement_no: str, role: str) -> signers.SimpleSigner:
        """A pyHanko signer holding a fresh event key; it lives only as long as the caller's frame."""
        cred = self.pki.issue_event_certificate(name, subject_id, agreement_no, role)
        key_der = cred.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return signers.SimpleSigner(
            signing_cert=_asn1_cert(cred.certificate),
            signing_key=keys.PrivateKeyInfo.load(key_der),
            cert_registry=self._chain_store,
        )

    def _is_fallback(self, tsa_cert: asn1_x509.Certificate | None) -> bool:
        return (
            isinstance(self.timestamper, ExternalTimestamper)
            and tsa_cert is not None
            and tsa_cert.issuer_serial == self.tsa.issuer_serial
        )

    @staticmethod
    def _writer(pdf: bytes) -> IncrementalPdfFileWriter:
        try:
            return IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        except Exception as exc:  # pyHanko raises PdfReadError and friends
            raise SignatureFailed(f"not a PDF pyHanko can update: {exc}") from exc

    @staticmethod
    def _check_order(writer: IncrementalPdfFileWriter, party: Party) -> None:
        signed = _filled_signature_fields(writer.prev)
        index = PARTY_ORDER.index(party)
        if FIELD_NAMES["archive"] in signed:
            raise SignatureFailed("the agreement is already finalized")
        if FIELD_NAMES[party] in signed:
            raise SignatureFailed(f"{party} has already signed")
        missing = [p for p in PARTY_ORDER[:index] if FIELD_NAMES[p] not in signed]
        if missing:
            raise SignatureFailed(f"{party} cannot sign before {', '.join(missing)}")

    @staticmethod
    def _run(coro: Any) -> io.BytesIO:
        try:
            result: io.BytesIO = _sync.run(coro)
        except SignatureFailed:
            raise
        except TimestampRequestError as exc:
            raise TimestampError(f"no timestamp could be obtained: {exc}") from exc
        except Exception as exc:
            raise SignatureFailed(f"pyHanko could not sign: {exc}") from exc
        return result

    # ------------------------------------------------------------------ long-term validation
    def validation_context(self) -> ValidationContext:
        """Offline validation context (our root, our CAs, current CRLs); rebuilt when CRLs change."""
        crls = tuple(self.pki.all_crls_der())
        if self._vc_cache is None or self._vc_cache[0] != crls:
            vc = ValidationContext(
                trust_roots=[self.root],
                other_certs=[self.issuing, self.tsa],
                crls=list(crls),
                allow_fetching=False,
            )
            self._vc_cache = (crls, vc)
        return self._vc_cache[1]

    def finalize(self, pdf: bytes) -> bytes:
        """Add the DSS (all certificates and CRLs) and a document timestamp covering it: PAdES B-LTA.

        Both go into one incremental update, so the party signatures stay untouched.
        """
        writer = self._writer(pdf)
        # event certificates are already inside each signature's CMS; the DSS adds the CA chain, the
        # TSA certificate and the CRLs that cover them (parsing the signatures here would cost ~50 ms)
        crls = list(self.validation_context().crls)
        DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=[self.root, self.issuing, self.tsa], crls=crls)
        stamper = signers.PdfTimeStamper(self.timestamper, field_name=FIELD_NAMES["archive"])
        out = self._run(
            stamper.async_timestamp_pdf(
                writer,
                "sha256",
                validation_context=None,
                bytes_reserved=self.bytes_reserved // 2,
                embed_roots=True,
            )
        )
        return out.getvalue()

    def sign_evidence(self, pdf: bytes, agreement_no: str) -> bytes:
        """The platform's invisible PAdES B-T signature on an evidence report (see render_evidence)."""
        writer = self._writer(pdf)
        orgs = self.pki.root_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        org = str(orgs[0].value) if orgs else "tripact"
        cms_signer = self._event_signer(f"{org} 证据签名"[:64], "platform", agreement_no, "platform")
        meta = signers.PdfSignatureMetadata(
            field_name=FIELD_NAMES["evidence"], md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
        )
        pdf_signer = signers.PdfSigner(meta, cms_signer, timestamper=self.timestamper)
        return self._run(pdf_signer.async_sign_pdf(writer, bytes_reserved=self.bytes_reserved)).getvalue()


def _filled_signature_fields(reader: PdfFileReader) -> set[str]:
    """Names of top-level signature fields that hold a value, without parsing the signatures.

    (pyHanko's ``enumerate_sig_fields`` resolves every /V, i.e. decodes each ~12 KB hex /Contents.)
    """
    form = reader.root.get("/AcroForm")
    if form is None:
        return set()
    names = set()
    for ref in form.get_object().get("/Fields", ()):
        fld = ref.get_object()
        if fld.get("/FT") == "/Sig" and "/V" in fld:
            names.add(str(fld["/T"]))
    return names


@functools.lru_cache(maxsize=32)
def _decode_png(image_png: bytes) -> Image.Image:
    """Decode once per distinct image (a school seals many agreements with the same PNG)."""
    try:
        opened = Image.open(io.BytesIO(image_png))
        opened.load()
    except Exception as exc:
        raise SignatureFailed(f"signature image is not a readable PNG: {exc}") from exc
    return opened if opened.mode in ("RGBA", "LA") else opened.convert("RGBA")


_ImageParts = tuple[tuple[tuple[str, Any], ...], bytes]


@functools.lru_cache(maxsize=32)
def _encoded_image(image_png: bytes) -> tuple[_ImageParts, ...]:
    """Dictionary entries and deflated data of the image XObject and its /SMask (if any), in the
    order pyHanko's ``pil_image`` writes them; computed once per distinct image."""
    scratch: Any = PdfFileWriter
    main = pil_image(_decode_png(image_png), scratch()).get_object()
    parts: list[_ImageParts] = []
    smask = main.raw_get("/SMask") if "/SMask" in main else None
    if smask is not None:
        smask_obj = smask.get_object()
        parts.append((tuple(smask_obj.items()), smask_obj.encoded_data))
    parts.append((tuple(main.items()), main.encoded_data))
    return tuple(parts)


class _ReusedImage(PdfImage):
    """A PdfImage whose pixel data is encoded once per process instead of once per signature.

    pyHanko's ``pil_image`` splits the alpha channel, converts and deflates ~230 KB of pixels for
    every signature; here the cached result is added to each new revision: the same objects in
    the same order with the same stream bytes as ``pil_image`` would write.
    """

    def __init__(self, image_png: bytes) -> None:
        super().__init__(_decode_png(image_png))
        self._png = image_png

    @property
    def image_ref(self) -> generic.IndirectObject:
        writer = self.writer
        assert writer is not None
        ref: Any = self._image_ref
        if ref is None or ref.get_pdf_handler() is not writer:
            ref = None
            for items, data in _encoded_image(self._png):  # the /SMask first, then the image
                entries = {k: (ref if k == "/SMask" else v) for k, v in items}
                ref = writer.add_object(generic.StreamObject(entries, encoded_data=data))
            self._image_ref = ref
        result: generic.IndirectObject = ref
        return result


def _image_style(image_png: bytes) -> StaticStampStyle:
    return StaticStampStyle(
        background=_ReusedImage(image_png),
        background_opacity=1.0,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(2),  # type: ignore[no-untyped-call]
            inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT,
        ),
    )
