"""Drop-in, behaviour-preserving speed-ups for pyHanko/asn1crypto (applied on import of signing).

All are process-wide (the rest of the application benefits too); ``uninstall()`` undoes them.
Each one either returns exactly what the original returns, or hands the case to the original
(``tests/signing/test_speedups.py`` compares both, down to whole verification reports).

1. pyHanko 0.38 reads hexadecimal strings one byte at a time through a Python generator. Every
signature's ``/Contents`` is a ~12-25 KB hex string, so reading the signatures of one agreement
(e.g. ``reader.embedded_signatures`` during verification) spent ~150 ms there alone. The
replacement below reads up to the closing ``>`` in blocks, drops PDF whitespace and decodes with
``binascii`` – same result, same errors for bad digits or a truncated stream.

2. asn1crypto's ``Asn1Value.dump`` reads ``self.contents`` two or three times on a first dump; for a
freshly built (not parsed) structure every read re-encodes the whole subtree, so building a CMS
signer info costs time exponential in nesting depth (~13 ms for one ESS signing-certificate
attribute). The replacement reads it once and reuses the value – identical bytes (the indefinite-
length BER case keeps the original code path).

3. asn1crypto compares X.509 names through RFC 4518 string preparation, one character at a time
through :mod:`stringprep` tables – slow for Chinese names, and repeated for every certificate
lookup during validation. The preparation is a pure function of the string, so it is memoised.

4. pyHanko's ``match_issuer_serial`` (used to find the signer among embedded certificates) compares
issuer names before serial numbers; a name mismatch runs the slow RFC 5280 comparison. Checking
the serial first answers the same ``and`` without that work for every non-matching candidate.

5. X.509 name comparison (``Name.__eq__``) and ``Name.hashable`` are pure functions of the names'
DER encodings, yet certificate path building and CRL matching recompute them (RDN by RDN, with
string preparation) hundreds of times per verification for the same three or four names. Both
are memoised by DER bytes; a miss runs asn1crypto's own code (so errors are raised as before).

6. pyHanko's PDF tokenizer reads names one byte at a time through a generator and then decodes
them byte by byte. ``read_until_delimiter`` now reads in blocks and stops at the first PDF
whitespace/delimiter (same bytes returned, same stream position), and ``_decode_name`` returns
plain names (printable ASCII, no ``#`` escape, no delimiter) directly; anything else takes the
original path. Writing a name (``NameObject.write_to_stream``, byte by byte) likewise writes plain
names in one call.

7. Most tokens of our PDFs are plain numbers (font /Widths arrays: ~500 per file) and ``n g R``
references, which pyHanko reads with several 1-byte reads, seeks and a generator each. Outside
content streams, ``read_object`` now matches a number or a single-spaced reference directly in a
20-byte look-ahead (the same look-ahead pyHanko takes to tell them apart); every other token,
and anything unusual (long numbers, other spacing, object number 0), takes the original path.
``read_non_whitespace`` (called before every token) likewise skips whitespace in blocks instead
of byte by byte; comments are still skipped by pyHanko's own ``skip_over_comments``. An array
made only of plain numbers (the font /Widths arrays) is read with one regular expression; any
other array, or a number pyHanko would reject, takes the original element-by-element loop.

8. pyHanko's difference analysis copies every object of every revision into a per-revision
resolver (``HistoricalResolver._subsume_object``); for a primitive (number, name, string ...) the
copy is the object itself, but is computed only after building a reference object for it. Now a
primitive with its container reference is returned at once; everything else, and a primitive
without one (the original raises), takes the original path.
"""

from __future__ import annotations

import binascii
import functools
import os
import re
from typing import Any

from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.misc import PdfStreamError
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.sign import general as pyhanko_general

_WHITESPACE = b"\x00\t\n\x0c\r "
_HEX = b"0123456789abcdefABCDEF"
_ORIGINAL = generic.read_hex_string_from_stream
_ORIGINAL_PREP = asn1_x509.NameTypeAndValue._ldap_string_prep
_ORIGINAL_DUMP = asn1_core.Asn1Value.dump
_ORIGINAL_MATCH = pyhanko_general.match_issuer_serial
_ORIGINAL_NAME_EQ = asn1_x509.Name.__eq__
_ORIGINAL_NAME_HASHABLE = asn1_x509.Name.hashable
_ORIGINAL_UNTIL_DELIMITER = misc.read_until_delimiter
_ORIGINAL_DECODE_NAME = generic._decode_name
_ORIGINAL_WRITE_NAME = generic.NameObject.write_to_stream
_ORIGINAL_READ_OBJECT = generic.read_object
_ORIGINAL_NON_WHITESPACE = misc.read_non_whitespace
_NON_WHITESPACE = re.compile(b"[^" + re.escape(misc.PDF_WHITESPACE) + b"]")
_ORIGINAL_READ_ARRAY_DESCRIPTOR = generic.ArrayObject.__dict__["read_from_stream"]  # a staticmethod
_ORIGINAL_READ_ARRAY = generic.ArrayObject.read_from_stream
_NUMBER_ARRAY = re.compile(rb"\[([0-9.+\- \t\r\n\f\x00]*)\]")
_PDF_SPACES = re.compile(rb"[ \t\r\n\f\x00]+")
_ORIGINAL_SUBSUME: Any = HistoricalResolver._subsume_object
_COMPOSITE = (generic.DictionaryObject, generic.ArrayObject, generic.IndirectObject, generic.DecryptedObjectProxy)
_G: Any = generic  # pyHanko's constructors are untyped
_SIMPLE_REF = re.compile(rb"(\d+) (\d+) R[^a-zA-Z]")
_DELIMITER = re.compile(b"[" + re.escape(misc.PDF_WHITESPACE + misc.PDF_DELIMITERS) + b"]")
_PLAIN_NAME_BYTES = bytes(b for b in range(0x21, 0x7F) if b != 0x23 and b not in misc.PDF_DELIMITERS)


def read_hex_string_from_stream(stream: Any) -> Any:
    """Read ``<...>`` at the stream position into a PDF string object (fast path)."""
    stream.read(1)  # the opening '<'
    start = stream.tell()
    parts: list[bytes] = []
    while True:
        block = stream.read(16384)
        if not block:
            raise PdfStreamError("Stream has ended unexpectedly (unterminated hex string)")
        end = block.find(b">")
        if end >= 0:
            parts.append(block[:end])
            break
        parts.append(block)
    raw = b"".join(parts)
    if b"%" in raw:  # a comment inside the string (legal, never ours): the original's rules apply
        stream.seek(start - 1)
        return _ORIGINAL(stream)
    stream.seek(start + len(raw) + 1)
    digits = raw.translate(None, _WHITESPACE)
    bad = digits.translate(None, _HEX)
    if bad:
        raise PdfStreamError("Unexpected token in hex string: " + repr(bad[:1]))
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def _dump(self: Any, force: bool = False) -> bytes:
    """``Asn1Value.dump`` computing the contents once (see module docstring, item 2)."""
    if isinstance(self, asn1_core.Constructable) and self._indefinite:
        return _ORIGINAL_DUMP(self, force)  # type: ignore[no-any-return]
    contents: bytes = self.contents
    if self._header is not None and self._header[-1:] == b"\x80":
        force = True
    if self._header is None or force:
        header: bytes = asn1_core._dump_header(self.class_, self.method, self.tag, contents)
        if self.explicit is not None:
            for class_, tag in self.explicit:
                header = asn1_core._dump_header(class_, 1, tag, header + contents) + header
        self._header = header
        self._trailer = b""
    return self._header + contents + self._trailer  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4096)
def _prep(string: str) -> str:
    result: str = _ORIGINAL_PREP(None, string)  # the method does not use ``self``
    return result


def _ldap_string_prep(self: Any, string: str) -> str:
    return _prep(string)


def _match_issuer_serial(expected_issuer_serial: Any, cert: Any) -> bool:
    """Serial numbers first, then pyHanko's own issuer comparison (see item 4)."""
    if not (expected_issuer_serial["serial_number"] == cert["tbs_certificate"]["serial_number"]):
        return False
    return bool(_ORIGINAL_MATCH(expected_issuer_serial, cert))


@functools.lru_cache(maxsize=4096)
def _names_equal(a: bytes, b: bytes) -> bool:
    return bool(asn1_x509.RDNSequence.load(a) == asn1_x509.RDNSequence.load(b))


def _name_eq(self: Any, other: Any) -> bool:
    """``Name.__eq__`` (= ``self.chosen == other.chosen``) memoised by the DER of both RDN sequences.

    Keyed by ``chosen`` so that explicit tagging of the Name (e.g. inside a GeneralName) does not
    count, exactly as in the original.
    """
    if not isinstance(other, asn1_x509.Name):
        return False
    return _names_equal(self.chosen.dump(), other.chosen.dump())


@functools.lru_cache(maxsize=4096)
def _hashable(der: bytes) -> str:
    value: str = asn1_x509.RDNSequence.load(der).hashable
    return value


def _name_hashable(self: Any) -> str:
    """``Name.hashable`` (= ``self.chosen.hashable``) memoised by the DER of the RDN sequence."""
    return _hashable(self.chosen.dump())


_HASHABLE_PROPERTY = property(_name_hashable)


def read_until_delimiter(stream: Any) -> bytes:
    """Bytes up to the next PDF whitespace or delimiter; the stream is left on it (see item 6)."""
    parts: list[bytes] = []
    while True:
        block = stream.read(64)
        if not block:  # end of stream: like the original, nothing to rewind
            return b"".join(parts)
        m = _DELIMITER.search(block)
        if m is not None:
            parts.append(block[: m.start()])
            stream.seek(m.start() - len(block), os.SEEK_CUR)
            return b"".join(parts)
        parts.append(block)


def _decode_name(name_bytes: bytes) -> Any:
    """Plain names directly, everything else (escapes, invalid bytes) the original way."""
    if not name_bytes.translate(None, _PLAIN_NAME_BYTES):
        return generic.NameObject("/" + name_bytes.decode("ascii"))
    return _ORIGINAL_DECODE_NAME(name_bytes)


def _write_name(self: Any, stream: Any, handler: Any = None, container_ref: Any = None) -> None:
    """Plain names in one write (the original escapes nothing in them), others the original way."""
    raw = self.encode("utf8")
    if raw[:1] == b"/" and not raw[1:].translate(None, _PLAIN_NAME_BYTES):
        stream.write(raw)
    else:
        _ORIGINAL_WRITE_NAME(self, stream, handler, container_ref)


def read_object(
    stream: Any,
    container_ref: Any,
    as_metadata_stream: bool = False,
    in_content_stream: Any = generic.ContentOpReading.NO,
) -> Any:
    """``generic.read_object`` with a direct path for numbers and simple references (item 7)."""
    if in_content_stream is generic.ContentOpReading.NO:
        start = stream.tell()
        peek = stream.read(20)
        if peek[:1].isdigit():
            result: Any = None
            if generic.INDIRECT_PATTERN.match(peek) is None:
                m = generic.NumberObject.NumberPattern.search(peek)
                if m is not None:
                    num = peek[: m.start()].decode("ascii")
                    result = _G.FloatObject(num) if "." in num else _G.NumberObject(num)
                    stream.seek(start + m.start())
            else:
                ref = _SIMPLE_REF.match(peek)
                if ref is not None and int(ref.group(1)) > 0:
                    result = _G.IndirectObject(int(ref.group(1)), int(ref.group(2)), container_ref.get_pdf_handler())
                    stream.seek(start + ref.end() - 1)
            if result is not None:
                result.container_ref = container_ref
                return result
        stream.seek(start)
    return _ORIGINAL_READ_OBJECT(stream, container_ref, as_metadata_stream, in_content_stream)


def read_non_whitespace(stream: Any, seek_back: bool = False, allow_eof: bool = False) -> bytes:
    """The next byte that is neither PDF whitespace nor in a comment (see item 7)."""
    while True:
        start = stream.tell()
        block: bytes = stream.read(32)
        if not block:
            if allow_eof:
                return b""
            raise PdfStreamError("Stream ended prematurely")
        m = _NON_WHITESPACE.search(block)
        if m is None:
            continue
        i = m.start()
        if block[i] == 0x25:  # '%': a comment, skipped the original way, then keep looking
            stream.seek(start + i)
            misc.skip_over_comments(stream)
            continue
        stream.seek(start + i if seek_back else start + i + 1)
        return block[i : i + 1]


def _read_array(stream: Any, container_ref: Any, in_content_stream: Any = generic.ContentOpReading.NO) -> Any:
    """``ArrayObject.read_from_stream`` with a one-regex path for arrays of plain numbers (item 7)."""
    if in_content_stream is generic.ContentOpReading.NO:
        start = stream.tell()
        m = _NUMBER_ARRAY.match(stream.read(4096))
        if m is not None:
            try:
                items = []
                for token in _PDF_SPACES.split(m.group(1)):
                    if token:
                        text = token.decode("ascii")
                        item = _G.FloatObject(text) if "." in text else _G.NumberObject(text)
                        item.container_ref = container_ref
                        items.append(item)
            except (ValueError, ArithmeticError):  # not numbers after all: let pyHanko say so
                pass
            else:
                stream.seek(start + m.end())
                return _G.ArrayObject(items)
        stream.seek(start)
    return _ORIGINAL_READ_ARRAY(stream, container_ref, in_content_stream=in_content_stream)


def _subsume_object(self: Any, obj: Any) -> Any:
    """Primitives are shared, not copied, by the original too: skip its bookkeeping (item 8)."""
    if not isinstance(obj, _COMPOSITE) and obj.container_ref is not None:
        return obj
    return _ORIGINAL_SUBSUME(self, obj)


def _patches() -> list[tuple[Any, str, Any, Any]]:
    """(owner, attribute, original, replacement) for every speed-up."""
    return [
        (generic, "read_hex_string_from_stream", _ORIGINAL, read_hex_string_from_stream),
        (asn1_core.Asn1Value, "dump", _ORIGINAL_DUMP, _dump),
        (asn1_x509.NameTypeAndValue, "_ldap_string_prep", _ORIGINAL_PREP, _ldap_string_prep),
        (pyhanko_general, "match_issuer_serial", _ORIGINAL_MATCH, _match_issuer_serial),
        (asn1_x509.Name, "__eq__", _ORIGINAL_NAME_EQ, _name_eq),
        (asn1_x509.Name, "hashable", _ORIGINAL_NAME_HASHABLE, _HASHABLE_PROPERTY),
        (misc, "read_until_delimiter", _ORIGINAL_UNTIL_DELIMITER, read_until_delimiter),
        (generic, "read_until_delimiter", _ORIGINAL_UNTIL_DELIMITER, read_until_delimiter),
        (generic, "_decode_name", _ORIGINAL_DECODE_NAME, _decode_name),
        (generic.NameObject, "write_to_stream", _ORIGINAL_WRITE_NAME, _write_name),
        (generic, "read_object", _ORIGINAL_READ_OBJECT, read_object),
        (HistoricalResolver, "_subsume_object", _ORIGINAL_SUBSUME, _subsume_object),
        (generic.ArrayObject, "read_from_stream", _ORIGINAL_READ_ARRAY_DESCRIPTOR, staticmethod(_read_array)),
        (misc, "read_non_whitespace", _ORIGINAL_NON_WHITESPACE, read_non_whitespace),
        (generic, "read_non_whitespace", _ORIGINAL_NON_WHITESPACE, read_non_whitespace),
    ]


def install() -> None:
    """Apply the speed-ups (idempotent)."""
    for owner, attribute, _, replacement in _patches():
        setattr(owner, attribute, replacement)


def uninstall() -> None:
    """Restore the original functions (used by the benchmark's bare-pyHanko baseline)."""
    for owner, attribute, original, _ in _patches():
        setattr(owner, attribute, original)


install()
