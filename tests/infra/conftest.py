"""Shared helpers for the infrastructure and packaging tests (no Azure, no network but PyPI)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def pytest_configure(config):
    # Registered here because tests/infra owns it; CI runs slow tests too.
    config.addinivalue_line("markers", "slow: takes more than 30 s (creates a virtual environment)")


@pytest.fixture(scope="session")
def bicep_files() -> list[Path]:
    files = sorted(INFRA.rglob("*.bicep"))
    assert files, "no Bicep files under infra/"
    return files
