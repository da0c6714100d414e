"""The pyHanko/asn1crypto speed-ups give exactly the results of the original code."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.sign.general import as_signing_certificate_v2, match_issuer_serial, simple_cms_attribute

from signing import PlatformPKI, _speedups


@pytest.fixture()
def original() -> Iterator[Callable[[Callable[[], Any]], Any]]:
    """Run a callable with the speed-ups undone."""

    def run(fn: Callable[[], Any]) -> Any:
        _speedups.uninstall()
        try:
            return fn()
        finally:
            _speedups.install()

    yield run
    _speedups.install()


def test_cms_attribute_encoding_is_unchanged(pki: PlatformPKI, original: Callable[..., Any]) -> None:
    cred = pki.issue_event_certificate("李𠇔䶮", "3601**********1234", "2026104033100042", "student")
    der = cred.certificate.public_bytes(Encoding.DER)

    def build() -> bytes:
        cert = asn1_x509.Certificate.load(der)
        value: bytes = simple_cms_attribute("signing_certificate_v2", as_signing_certificate_v2(cert)).dump()
        return value

    assert build() == original(build)


def test_issuer_serial_matching_is_unchanged(pki: PlatformPKI, original: Callable[..., Any]) -> None:
    certs = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in (pki.issuing_cert, pki.tsa_cert)]
    event = pki.issue_event_certificate("a", "b", "c", "school").certificate
    certs.append(asn1_x509.Certificate.load(event.public_bytes(Encoding.DER)))
    for expected in certs:
        ess = as_signing_certificate_v2(expected)["certs"][0]["issuer_serial"]
        fast = [match_issuer_serial(ess, c) for c in certs]
        assert fast == original(lambda ess=ess: [match_issuer_serial(ess, c) for c in certs])
        assert fast.count(True) == 1


@given(
    data=st.binary(max_size=300),
    spacing=st.lists(st.sampled_from([b" ", b"\n", b"\r\n", b"\t"]), max_size=5),
    odd=st.booleans(),
)
def test_hex_strings_parse_identically(data: bytes, spacing: list[bytes], odd: bool) -> None:
    digits = data.hex().encode() + (b"a" if odd else b"")
    for i, space in enumerate(spacing):
        pos = (i * 7) % (len(digits) + 1)
        digits = digits[:pos] + space + digits[pos:]
    source = b"<" + digits + b"> trailing"
    fast_stream = io.BytesIO(source)
    slow_stream = io.BytesIO(source)
    fast = _speedups.read_hex_string_from_stream(fast_stream)
    slow = _speedups._ORIGINAL(slow_stream)
    assert bytes(fast.original_bytes) == bytes(slow.original_bytes)
    assert fast_stream.tell() == slow_stream.tell()


def test_bad_hex_digit_is_still_an_error() -> None:
    with pytest.raises(generic.PdfStreamError):
        _speedups.read_hex_string_from_stream(io.BytesIO(b"<12zz>"))
    with pytest.raises(generic.PdfStreamError):
        _speedups.read_hex_string_from_stream(io.BytesIO(b"<1234"))


_NAME_BYTES = st.binary(max_size=40) | st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40
).map(str.encode)


@given(body=_NAME_BYTES, tail=st.sampled_from([b"", b" 1", b"/Next", b"(x)", b">>", b"\n", b"%c"]))
def test_names_parse_identically(body: bytes, tail: bytes) -> None:
    source = b"/" + body + tail
    fast_stream, slow_stream = io.BytesIO(source), io.BytesIO(source)

    def read(stream: io.BytesIO) -> tuple[str, str]:
        try:
            return str(generic.NameObject.read_from_stream(stream)), "ok"
        except Exception as exc:  # noqa: BLE001 – the error type is what we compare
            return type(exc).__name__, "error"

    fast = read(fast_stream)
    _speedups.uninstall()
    try:
        slow = read(slow_stream)
    finally:
        _speedups.install()
    assert fast == slow
    assert fast_stream.tell() == slow_stream.tell()


@given(data=st.binary(max_size=200))
def test_read_until_delimiter_is_unchanged(data: bytes) -> None:
    fast_stream, slow_stream = io.BytesIO(data), io.BytesIO(data)
    fast = _speedups.read_until_delimiter(fast_stream)
    slow = _speedups._ORIGINAL_UNTIL_DELIMITER(slow_stream)
    assert fast == slow
    assert fast_stream.tell() == slow_stream.tell()


def test_name_comparison_is_unchanged(pki: PlatformPKI, original: Callable[..., Any]) -> None:
    roots = (pki.root_cert, pki.issuing_cert)
    certs = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in roots]
    event = pki.issue_event_certificate("李𠇔䶮", "3601**********1234", "2026104033100042", "student")
    certs.append(asn1_x509.Certificate.load(event.certificate.public_bytes(Encoding.DER)))
    names = [n for c in certs for n in (c.subject, c.issuer)]
    names.append(asn1_x509.GeneralName(name="directory_name", value=certs[1].issuer).chosen)  # tagged

    def compare() -> list[Any]:
        return [a == b for a in names for b in names] + [n.hashable for n in names]

    assert compare() == original(compare)


def test_reused_signature_image_is_what_pyhanko_writes() -> None:
    from PIL import Image
    from pyhanko.pdf_utils.images import pil_image
    from pyhanko.pdf_utils.writer import PdfFileWriter

    from signing.sign import _ReusedImage

    img = Image.new("RGBA", (40, 30), (200, 10, 20, 128))
    buf = io.BytesIO()
    img.save(buf, "PNG")

    def objects(writer: PdfFileWriter) -> list[bytes]:
        out = []
        for idnum in range(1, writer._lastobj_id + 1):
            stream = io.BytesIO()
            writer.get_object(generic.Reference(idnum, 0, writer)).write_to_stream(stream)
            out.append(stream.getvalue())
        return out

    plain, reused = PdfFileWriter(), PdfFileWriter()
    pil_image(img, plain)
    image = _ReusedImage(buf.getvalue())
    image.set_writer(reused)
    ref = image.image_ref
    assert image.image_ref is ref  # cached per writer
    assert objects(reused) == objects(plain)
    assert len(objects(plain)) >= 2  # the image and its /SMask


class _NoHandler:
    def get_pdf_handler(self) -> None:
        return None


_TOKEN = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**25).map(lambda n: str(n).encode()),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: str(d).encode()),
    st.tuples(st.integers(0, 10**6), st.integers(0, 70000), st.sampled_from([b" ", b"  ", b"\n", b"\x0b"])).map(
        lambda t: str(t[0]).encode() + t[2] + str(t[1]).encode() + t[2] + b"R"
    ),
    st.sampled_from([b"/Name", b"(text)", b"<00ff>", b"true", b"null", b"1.2.3", b"12-3", b"007", b"0 0 R"]),
)


@given(tokens=st.lists(_TOKEN, max_size=12), seps=st.sampled_from([b" ", b"\n", b"  ", b""]), end=st.booleans())
def test_objects_parse_identically(tokens: list[bytes], seps: bytes, end: bool) -> None:
    source = b"[" + (seps or b" ").join(tokens) + (b"]" if end else b"") + b" 5 0 obj"

    def read() -> tuple[str, int]:
        stream = io.BytesIO(source)
        try:
            result = generic.read_object(stream, _NoHandler())  # type: ignore[arg-type]
            return re.sub(r" at 0x[0-9a-f]+", "", repr(result)), stream.tell()
        except Exception as exc:  # noqa: BLE001 – the error type is what we compare
            return type(exc).__name__, -1

    fast = read()
    _speedups.uninstall()
    try:
        slow = read()
    finally:
        _speedups.install()
    assert fast == slow


@given(
    data=st.lists(st.sampled_from([b" ", b"\n", b"\r\n", b"\x00", b"\t", b"%c\n", b"%", b"x", b"12", b"/N"])),
    seek_back=st.booleans(),
    allow_eof=st.booleans(),
)
def test_read_non_whitespace_is_unchanged(data: list[bytes], seek_back: bool, allow_eof: bool) -> None:
    source = b"".join(data)

    def read(fn: Callable[..., bytes]) -> tuple[bytes | str, int]:
        stream = io.BytesIO(source)
        try:
            return fn(stream, seek_back=seek_back, allow_eof=allow_eof), stream.tell()
        except Exception as exc:  # noqa: BLE001 – the error type is what we compare
            return type(exc).__name__, stream.tell()

    assert read(_speedups.read_non_whitespace) == read(_speedups._ORIGINAL_NON_WHITESPACE)


def test_verification_reports_are_unchanged(
    stages: dict[str, bytes], pki: PlatformPKI, original: Callable[..., Any]
) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    from signing import verify_pdf

    writer = IncrementalPdfFileWriter(io.BytesIO(stages["final"]))
    extra = generic.StreamObject(stream_data=b"BT /F1+0 14 Tf 300 760 Td (PAID 100000) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(extra))
    tampered = io.BytesIO()
    writer.write(tampered)
    files = [*stages.values(), stages["final"], tampered.getvalue()]
    crls = pki.all_crls_der()

    def reports() -> list[Any]:
        return [verify_pdf(pdf, [pki.root_cert], crls=crls) for pdf in files]

    fast = reports()
    assert fast == original(reports)
    assert fast[-2].ok and not fast[-1].ok  # the completed file is valid, the tampered one is not


@pytest.mark.parametrize("source", [b"<41%c\n42>", b"<41 % > x\n 42> tail", b"<%>\n4142>"])
def test_hex_strings_with_comments_parse_as_the_original_does(source: bytes) -> None:
    """A comment inside a hex string (review finding: the fast path raised where pyHanko reads on)."""
    fast_stream, slow_stream = io.BytesIO(source), io.BytesIO(source)
    try:
        slow = bytes(_speedups._ORIGINAL(slow_stream).original_bytes)
    except generic.PdfStreamError:
        with pytest.raises(generic.PdfStreamError):
            _speedups.read_hex_string_from_stream(fast_stream)
        return
    assert bytes(_speedups.read_hex_string_from_stream(fast_stream).original_bytes) == slow
    assert fast_stream.tell() == slow_stream.tell()
