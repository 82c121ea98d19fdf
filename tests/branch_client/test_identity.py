"""The branch secret file: its two formats, and Windows DPAPI.

DPAPI exists only on Windows. Here the format handling is tested through the `Protector`
seam with a stand-in that seals by reversible scrambling (`Sealer`); the real DPAPI round
trip is the Windows-only test at the end, which the workflow .github/workflows/branch-exe.yml
runs on windows-latest.
"""

import os
import sys

import pytest

from branch_client.errors import StoreError
from branch_client.identity import MARKER, DpapiProtector, default_protector, read_secret, write_secret
from shared.signing import new_secret


class Sealer:
    """A stand-in for DPAPI at the seam: XOR with a key, refusing blobs sealed with another key."""

    def __init__(self, key: int = 0x5A):
        self.key = key

    def protect(self, data: bytes) -> bytes:
        return bytes([self.key]) + bytes(b ^ self.key for b in data)

    def unprotect(self, blob: bytes) -> bytes:
        if blob[0] != self.key:
            raise OSError("The data is invalid (sealed on another PC)")
        return bytes(b ^ self.key for b in blob[1:])


def test_without_a_protector_the_secret_is_a_plain_owner_only_file(tmp_path):
    secret, path = new_secret(), tmp_path / "secret"
    write_secret(path, secret, protector=None)
    assert path.read_text("ascii") == secret and read_secret(path, protector=None) == secret
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600


def test_with_a_protector_the_file_is_marked_sealed_and_never_holds_the_secret(tmp_path):
    secret, path = new_secret(), tmp_path / "secret"
    write_secret(path, secret, protector=Sealer())
    raw = path.read_bytes()
    assert raw.startswith(MARKER) and secret.encode() not in raw
    assert read_secret(path, protector=Sealer()) == secret


def test_a_plain_file_from_before_dpapi_still_reads_where_dpapi_is_used(tmp_path):
    secret, path = new_secret(), tmp_path / "secret"
    write_secret(path, secret, protector=None)
    assert read_secret(path, protector=Sealer()) == secret


def test_a_sealed_file_where_it_cannot_be_unsealed_is_a_clear_store_error(tmp_path):
    path = tmp_path / "secret"
    write_secret(path, new_secret(), protector=Sealer(0x11))
    with pytest.raises(StoreError) as elsewhere:
        read_secret(path, protector=Sealer(0x22))
    with pytest.raises(StoreError) as off_windows:
        read_secret(path, protector=None)
    assert "another PC" in str(elsewhere.value) and "DPAPI" in str(off_windows.value)
    assert "enroll" in str(elsewhere.value) and "enroll" in str(off_windows.value)


def test_a_damaged_sealed_file_says_to_enroll_again(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(MARKER + b"not base64!")
    with pytest.raises(StoreError) as err:
        read_secret(path, protector=Sealer())
    assert "damaged" in str(err.value)


def test_only_windows_uses_dpapi_by_default():
    assert isinstance(default_protector(), DpapiProtector) == (sys.platform == "win32")


@pytest.mark.skipif(sys.platform != "win32", reason="Windows DPAPI exists only on Windows")
def test_on_windows_the_secret_is_sealed_with_dpapi_and_reads_back(tmp_path):
    secret, path = new_secret(), tmp_path / "secret"
    write_secret(path, secret)  # the platform default: DPAPI
    raw = path.read_bytes()
    assert raw.startswith(MARKER) and secret.encode() not in raw
    assert read_secret(path) == secret
    assert DpapiProtector().unprotect(DpapiProtector().protect(b"abc")) == b"abc"
