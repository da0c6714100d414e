"""Benchmark: one agreement's document-side life, tripact vs. a bare, tuned pyHanko baseline.

tripact side (``tripact_one_agreement``): the product's own path – workflow transitions with their
SQLite and local-store writes (apply, confirm, student signs, the school signs from the outbox, the
employer signs), each signature rendered/stored by documents.PdfSigner (render -> three visible PAdES
B-T signatures with fresh event certificates and built-in TSA timestamps -> DSS + document
timestamp), then a full verification against our root and archive. ``library_ms_per_agreement``
is the signing library alone (no database, no store), for reference; ``library_cpu_ms_<stage>``
are its per-stage process-CPU medians (render, each signature, finalize, verify).

Baseline (``baseline_one_agreement``): pyHanko alone on the *same rendered file*: three visible
signatures with the same images and boxes (keys and certificates parsed once, bytes_reserved set),
DSS + document timestamp, then validation of every signature and the timestamp with one reused
ValidationContext. Both run in this same process run. Both sides take their timestamps from the
same in-process RFC 3161 authority (signing.tsa.LocalTimeStamper): pyHanko's DummyTimeStamper is
RSA-only and spends ~60 ms per token re-encoding asn1crypto objects, which would flatter tripact.
The baseline runs with signing._speedups undone (pyHanko's own hex-string parser, asn1crypto's
own dump and name preparation), so that it is really "bare pyHanko".

Throughput (``agreements_per_second``) runs tripact_one_agreement in 2 processes, each with its own
SQLite instance. Output ends with one ``name value`` figure per line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asn1crypto import keys as asn1_keys  # noqa: E402
from asn1crypto import x509 as asn1_x509  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from pyhanko.pdf_utils import layout  # noqa: E402
from pyhanko.pdf_utils.images import PdfImage  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign import fields, signers  # noqa: E402
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp  # noqa: E402
from pyhanko.sign.validation.dss import DocumentSecurityStore  # noqa: E402
from pyhanko.stamp import StaticStampStyle  # noqa: E402
from pyhanko_certvalidator import ValidationContext  # noqa: E402
from pyhanko_certvalidator.registry import SimpleCertificateStore  # noqa: E402

from signing import (  # noqa: E402
    SIGNATURE_BOXES,
    AgreementSigner,
    PlatformPKI,
    SignerIdentity,
    _speedups,  # noqa: E402
    render_agreement,
    verify_pdf,
)
from signing.tsa import LocalTimestampAuthority, LocalTimeStamper  # noqa: E402
from tests.signing.helpers import BASE_AGREEMENT  # noqa: E402

PARTIES = ("student", "school", "employer")
VERIFY_URL = "https://sign.example.edu.cn/v/K7Q2M9XA"
DATA = BASE_AGREEMENT  # the signing tests' agreement: rare name characters, every field filled


def _png(color: tuple[int, int, int]) -> bytes:
    img = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((6, 6, 234, 234), outline=(*color, 255), width=10)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


IMAGES = {"student": _png((20, 20, 20)), "school": _png((210, 20, 30)), "employer": _png((200, 10, 20))}
IDENTITIES = {p: SignerIdentity(f"{p} 名称", "3601**********1234", DATA.agreement_no) for p in PARTIES}

_STATE: dict[str, object] = {}


def setup() -> None:
    """Per process: PKI (in a temp dir), signer, baseline material. Not timed."""
    tmp = Path(tempfile.mkdtemp(prefix="tripact-bench-"))
    pki = PlatformPKI.create(tmp / "pki", "bench-secret", "tripact 基准测试", "http://127.0.0.1:9/crl")
    _STATE["pki"] = pki
    _STATE["signer"] = AgreementSigner(pki)
    _STATE["rendered"] = render_agreement(DATA, VERIFY_URL, "K7Q2-M9XA")
    _STATE["baseline"] = _Baseline(pki)
    _setup_app()


def library_one_agreement() -> bytes:
    """The signing library alone: render, sign x3, finalize, verify (no database, no store)."""
    pki: PlatformPKI = _STATE["pki"]  # type: ignore[assignment]
    signer: AgreementSigner = _STATE["signer"]  # type: ignore[assignment]
    pdf = render_agreement(DATA, VERIFY_URL, "K7Q2-M9XA")
    for party in PARTIES:
        pdf = signer.sign_party(pdf, party, IDENTITIES[party], IMAGES[party]).pdf
    pdf = signer.finalize(pdf)
    report = verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der())
    if not report.ok:
        raise SystemExit(f"tripact produced an invalid PDF: {report.reason_en}")
    return pdf


def library_stage_cpu(rounds: int) -> dict[str, float]:
    """Median process-CPU milliseconds per library stage (render, each signature, finalize, verify)."""
    pki: PlatformPKI = _STATE["pki"]  # type: ignore[assignment]
    signer: AgreementSigner = _STATE["signer"]  # type: ignore[assignment]
    samples: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], bytes]) -> bytes:
        start = time.process_time()
        out = fn()
        samples.setdefault(name, []).append((time.process_time() - start) * 1000)
        return out

    def verify(pdf: bytes) -> bytes:
        if not verify_pdf(pdf, [pki.root_cert], crls=pki.all_crls_der()).ok:
            raise SystemExit("tripact produced an invalid PDF")
        return pdf

    for _ in range(rounds):
        pdf = timed("render", lambda: render_agreement(DATA, VERIFY_URL, "K7Q2-M9XA"))
        for party in PARTIES:
            pdf = timed(f"sign_{party}", lambda p=party, d=pdf: signer.sign_party(d, p, IDENTITIES[p], IMAGES[p]).pdf)
        pdf = timed("finalize", lambda d=pdf: signer.finalize(d))
        timed("verify", lambda d=pdf: verify(d))
    return {name: statistics.median(values) for name, values in samples.items()}


def _setup_app() -> None:
    """A real tripact instance in a temp folder: SQLite database, local store, platform CA, one school
    with its seal and one employer with a user and a seal."""
    import app as tripact_app
    import documents
    import models
    import settings as settings_mod
    from tests import factories

    tmp = Path(tempfile.mkdtemp(prefix="tripact-bench-app-"))
    s = settings_mod.defaults_for_tests(tmp, signing={"pki_dir": str(tmp / "pki")})
    tripact_app.configure_services(s)
    models.db.connect(reuse_if_open=True)
    models.upgrade()
    documents.create_pki(s)
    _STATE["settings"] = s
    _STATE["world"] = factories.World()


def tripact_one_agreement() -> bytes:
    """The tripact side, as the product does it: the workflow's transitions with the database and
    store writes (apply, confirm, student signs -> school signs from the outbox -> employer signs,
    each signature rendered/stored through documents.PdfSigner), then a full verification against
    our root and archive."""
    import documents
    import jobs
    import storage
    import workflow
    from models import Agreement
    from tests import factories

    world = _STATE["world"]
    student = factories.make_student(world.school)  # type: ignore[attr-defined]
    actor = workflow.Actor.student(student)
    a = workflow.apply(actor, world.employer.id, factories.terms())  # type: ignore[attr-defined]
    workflow.confirm(world.employer_actor, a.id)  # type: ignore[attr-defined]
    workflow.student_sign(actor, a.id, IMAGES["student"])
    jobs.run_due()
    a = workflow.employer_sign(world.employer_actor, a.id, world.employer_seal.id)  # type: ignore[attr-defined]
    pdf = storage.get_storage().get(Agreement.get_by_id(a.id).document_key)
    report = documents.verify_document(_STATE["settings"], pdf)  # type: ignore[arg-type]
    if not report.ok or report.archive_match is None:
        raise SystemExit(f"tripact produced an invalid PDF: {report.reason_en}")
    return pdf


class _Baseline:
    """Bare pyHanko, tuned: everything parsed once, bytes_reserved set, one ValidationContext."""

    def __init__(self, pki: PlatformPKI) -> None:
        root_key = serialization.load_pem_private_key(
            (Path(pki.directory or ".") / "root.key.pem").read_bytes(), b"bench-secret"
        )
        now = dt.datetime.now(dt.UTC)

        def cert(name: str, pub: object, eku: bool = False) -> x509.Certificate:
            b = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(pki.root_cert.subject)
                .public_key(pub)
                .serial_number(x509.random_serial_number())  # type: ignore[arg-type]
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=1))
            )
            if eku:
                b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            else:
                b = b.add_extension(
                    x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
                )
            return b.sign(root_key, hashes.SHA256())  # type: ignore[arg-type]

        def asn1(c: x509.Certificate) -> asn1_x509.Certificate:
            return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

        def pkey(k: object) -> asn1_keys.PrivateKeyInfo:
            return asn1_keys.PrivateKeyInfo.load(
                k.private_bytes(  # type: ignore[attr-defined]
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

        self.root = asn1(pki.root_cert)
        store = SimpleCertificateStore.from_certs([self.root])
        self.signers = {}
        for party in PARTIES:
            key = ec.generate_private_key(ec.SECP256R1())
            self.signers[party] = signers.SimpleSigner(asn1(cert(party, key.public_key())), pkey(key), store)
        authority = LocalTimestampAuthority(pki)
        self.tsa_cert = authority.tsa_cert
        self.timestamper = LocalTimeStamper(authority)
        self.vc = ValidationContext(trust_roots=[self.root], other_certs=[self.tsa_cert], allow_fetching=False)
        self.styles = {
            p: StaticStampStyle(
                background=PdfImage(Image.open(io.BytesIO(IMAGES[p]))),
                background_opacity=1.0,
                border_width=0,
                background_layout=layout.SimpleBoxLayoutRule(
                    x_align=layout.AxisAlignment.ALIGN_MID,
                    y_align=layout.AxisAlignment.ALIGN_MID,
                    margins=layout.Margins.uniform(2),
                    inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT,
                ),
            )
            for p in PARTIES
        }

    def one_agreement(self, rendered: bytes) -> bytes:
        pdf = rendered
        for party in PARTIES:
            page, *box = SIGNATURE_BOXES[party]
            meta = signers.PdfSignatureMetadata(
                field_name=party, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
            )
            spec = fields.SigFieldSpec(party, on_page=page, box=(box[0], box[1], box[2], box[3]))
            pdf_signer = signers.PdfSigner(
                meta,
                self.signers[party],
                timestamper=self.timestamper,
                stamp_style=self.styles[party],
                new_field_spec=spec,
            )
            pdf = pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), bytes_reserved=12_288).getvalue()
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=[self.root, self.tsa_cert])
        pdf = (
            signers.PdfTimeStamper(self.timestamper, field_name="ts")
            .timestamp_pdf(writer, "sha256", bytes_reserved=8_192)
            .getvalue()
        )
        asyncio.run(self._validate(pdf))
        return pdf

    async def _validate(self, pdf: bytes) -> None:
        reader = PdfFileReader(io.BytesIO(pdf))
        for sig in reader.embedded_signatures:
            if sig.sig_object_type == "/DocTimeStamp":
                ok = (await async_validate_pdf_timestamp(sig, self.vc)).valid
            else:
                ok = (await async_validate_pdf_signature(sig, self.vc)).bottom_line
            if not ok:
                raise SystemExit(f"baseline signature {sig.field_name} invalid")


def baseline_one_agreement() -> bytes:
    """The baseline side, with pyHanko's own (unpatched) parser."""
    base: _Baseline = _STATE["baseline"]  # type: ignore[assignment]
    _speedups.uninstall()
    try:
        return base.one_agreement(_STATE["rendered"])  # type: ignore[arg-type]
    finally:
        _speedups.install()


def _time(fn: Callable[[], bytes], rounds: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU milliseconds per call."""
    wall, cpu = [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return wall, cpu


def _worker(seconds: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    setup()
    tripact_one_agreement()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tripact_one_agreement()
        count += 1
    queue.put((count, time.perf_counter() - start))


def main(rounds: int = 15, throughput_seconds: float = 6.0) -> None:
    setup()
    for _ in range(2):  # warm-up: fonts, imports, caches
        tripact_one_agreement()
        baseline_one_agreement()
    base_ms: list[float] = []
    trip_ms: list[float] = []
    base_cpu: list[float] = []
    trip_cpu: list[float] = []
    lib_ms: list[float] = []
    for _ in range(rounds):  # interleaved so that both see the same machine state
        wall, cpu = _time(baseline_one_agreement, 1)
        base_ms += wall
        base_cpu += cpu
        wall, cpu = _time(tripact_one_agreement, 1)
        trip_ms += wall
        trip_cpu += cpu
        lib_ms += _time(library_one_agreement, 1)[0]
    pdf = tripact_one_agreement()
    stages = library_stage_cpu(rounds)

    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=_worker, args=(throughput_seconds, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    per_second = sum(count / elapsed for count, elapsed in results)

    baseline = statistics.median(base_ms)
    tripact = statistics.median(trip_ms)
    print(f"# medians over {rounds} rounds; throughput over {throughput_seconds:.0f} s in 2 processes")
    print(f"# load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"baseline_cpu_ms_per_agreement {statistics.median(base_cpu):.1f}")
    print(f"tripact_cpu_ms_per_agreement {statistics.median(trip_cpu):.1f}")
    print(f"library_ms_per_agreement {statistics.median(lib_ms):.1f}")
    for name, value in stages.items():
        print(f"library_cpu_ms_{name} {value:.1f}")
    print(f"baseline_ms_per_agreement {baseline:.1f}")
    print(f"tripact_ms_per_agreement {tripact:.1f}")
    print(f"ratio {tripact / baseline:.2f}")
    print(f"agreements_per_second {per_second:.1f}")
    print(f"pdf_kb {len(pdf) / 1024:.1f}")


if __name__ == "__main__":
    main()
