"""The agreement as the parties read it on the phone: the pages of its PDF as images.

The PDF is the signed one once the student has signed (``document_key``); before that it is rendered
unsigned from the agreement's current content, exactly as the signing step will render it. Pages are
rasterised with poppler's ``pdftoppm`` and kept in the store per revision (the document hash, or the
content digest for the unsigned rendering), so each revision is rasterised once; a new revision's
images replace the other revisions' in the store. When rendering or
rasterising is impossible (no poppler, a font missing) the pages show the agreement's data as HTML.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from flask import current_app, url_for

import documents
import signing
import storage
from models import Agreement
from workflow import content_digest

log = logging.getLogger(__name__)

DPI = 110
MAX_PAGES = 12
RASTERISE_TIMEOUT = 30.0
CONFIG_KEY = "WECHAT_PAGE_IMAGES"
"""app.config switch (default on): off shows every agreement as HTML."""


def revision_tag(a: Agreement) -> str:
    """Names the document state the page images show."""
    return (a.document_sha256 if a.document_key else "u" + content_digest(a))[:17]


def _pages_folder(a: Agreement) -> str:
    return f"agreements/{a.graduation_year}/{a.number}/pages"


def _page_key(a: Agreement, tag: str, page: int) -> str:
    return f"{_pages_folder(a)}/{tag}-{page}.png"


def _source_pdf(a: Agreement) -> bytes:
    if a.document_key:
        return storage.get_storage().get(a.document_key)
    settings = current_app.config["TRIPACT"]
    return signing.render_agreement(documents.agreement_data(a), documents.verify_url(settings, a),
                                    a.verify_code)


def _rasterise(pdf: bytes) -> list[bytes]:
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise FileNotFoundError("pdftoppm (poppler-utils) is not installed")
    with tempfile.TemporaryDirectory(prefix="tripact-pages-") as tmp:
        src = Path(tmp) / "doc.pdf"
        src.write_bytes(pdf)
        subprocess.run([exe, "-png", "-r", str(DPI), "-l", str(MAX_PAGES), str(src), str(Path(tmp) / "p")],
                       check=True, capture_output=True, timeout=RASTERISE_TIMEOUT)
        files = sorted(Path(tmp).glob("p-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        return [f.read_bytes() for f in files]


def _manifest_key(a: Agreement, tag: str) -> str:
    return f"{_pages_folder(a)}/{tag}-pages.txt"


def page_count(a: Agreement) -> int:
    """How many page images this revision has, rasterising (and storing) them on first use.

    A revision counts as stored when its manifest (the page count, written after the last page)
    is there and so is every page it names; anything less – a crash half-way, a page removed by a
    concurrent clean-up – is rasterised again."""
    store = storage.get_storage()
    tag = revision_tag(a)
    try:
        count = int(store.get(_manifest_key(a, tag)).decode("ascii"))
    except (storage.NotFound, ValueError, UnicodeDecodeError):
        count = 0
    if 0 < count <= MAX_PAGES and all(store.exists(_page_key(a, tag, n)) for n in range(1, count + 1)):
        return count
    pages = _rasterise(_source_pdf(a))
    for n, png in enumerate(pages, 1):
        store.put(_page_key(a, tag, n), png, "image/png")
    store.put(_manifest_key(a, tag), str(len(pages)).encode("ascii"), "text/plain")
    _forget_other_revisions(a, tag)
    return len(pages)


def _forget_other_revisions(a: Agreement, tag: str) -> None:
    """Delete the page images of the agreement's other revisions: only the current revision is ever
    shown (its tag is in every image URL), and each revision costs a few hundred KB – over a
    season's hundreds of thousands of agreements, the store would keep every intermediate state.

    Only a request whose revision is still the current one (read again from the database) cleans
    up, so a request that loaded the agreement just before a change cannot remove the newer
    revision's pages. A failure here costs only space: it is logged, not raised."""
    store = storage.get_storage()
    current = Agreement.get_or_none(Agreement.id == a.id)
    if current is None or revision_tag(current) != tag:
        return
    try:
        keys = store.keys(_pages_folder(a))
    except storage.StorageError as exc:
        log.warning("agreement %s: old page images not listed: %s", a.id, exc)
        return
    for key in keys:
        if key.rsplit("/", 1)[-1].startswith(tag + "-"):
            continue
        try:
            store.delete(key)
        except storage.StorageError as exc:
            log.warning("agreement %s: old page image %s not deleted: %s", a.id, key, exc)


def page_image(a: Agreement, page: int) -> bytes | None:
    """The PNG of one page of the agreement's current revision, or None when there is no such page."""
    if not 1 <= page <= MAX_PAGES or page > page_count(a):
        return None
    try:
        return storage.get_storage().get(_page_key(a, revision_tag(a), page))
    except storage.NotFound:  # a newer revision's request removed it just now: the page reloads
        return None


def document_view(a: Agreement) -> dict[str, object]:
    """``{"kind": "pages", "images": [urls]}``, or ``{"kind": "html"}`` when page images are off or
    cannot be made (the reason is logged)."""
    if not current_app.config.get(CONFIG_KEY, True):
        return {"kind": "html"}
    try:
        count = page_count(a)
    except (OSError, subprocess.SubprocessError, signing.SigningError, storage.StorageError) as exc:
        log.warning("agreement %s: page images unavailable, showing HTML: %s", a.id, exc)
        return {"kind": "html"}
    tag = revision_tag(a)
    images = [url_for("wechat_pages.agreement_page", agreement_id=a.id, page=n, v=tag)
              for n in range(1, count + 1)]
    return {"kind": "pages", "images": images}


__all__ = ["document_view", "page_image", "page_count", "revision_tag", "CONFIG_KEY"]
