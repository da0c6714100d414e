"""Fixtures for the signing tests: one PKI and one completed agreement per session (for speed)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from signing import AgreementSigner, PlatformPKI

from .helpers import MASTER_SECRET, make_agreement, sign_all


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PlatformPKI:
    return PlatformPKI.create(
        tmp_path_factory.mktemp("pki"),
        MASTER_SECRET,
        "tripact 测试平台",
        "http://127.0.0.1:9/crl/issuing.crl",
    )


@pytest.fixture(scope="session")
def signer(pki: PlatformPKI) -> AgreementSigner:
    return AgreementSigner(pki)


@pytest.fixture(scope="session")
def stages(signer: AgreementSigner) -> dict[str, bytes]:
    return sign_all(signer, make_agreement())


@pytest.fixture(scope="session")
def completed(stages: dict[str, bytes]) -> bytes:
    return stages["final"]


@pytest.fixture()
def write_pdf(tmp_path: Path) -> Callable[[bytes, str], Path]:
    def _write(data: bytes, name: str = "doc.pdf") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a poppler/NSS command line tool; skip the test when the Debian package is missing."""
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} not installed (Debian: poppler-utils / libnss3-tools)")
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def nss_db(pki: PlatformPKI, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database that trusts our root, so that `pdfsig -nssdir` checks the chain."""
    directory = tmp_path_factory.mktemp("nss")
    root = directory / "root.pem"
    root.write_bytes(pki.root_cert_pem())
    db = f"sql:{directory}"
    run_tool("certutil", "-N", "-d", db, "--empty-password").check_returncode()
    run_tool("certutil", "-A", "-d", db, "-n", "tripact-root", "-t", "CT,C,C", "-i", str(root)).check_returncode()
    return db
