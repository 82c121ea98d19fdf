"""The BUILT executable syncs over HTTPS with a certificate from a CA the OS trusts.

The same round trip as tests/e2e/test_https_sync.py, with the frozen program as the branch:
truststore must work inside the one-file bundle too. On the Windows runner the CA sits in
the machine's Root store (BRANCHSYNC_TEST_PKI), where certifi alone would refuse it.
"""

import pytest

from tests.e2e.test_https_sync import admin_https_env, https_cloud, https_env, https_round_trip, pki  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.azurite, pytest.mark.timeout(900)]


def test_the_executable_enrolls_sells_and_syncs_over_https(exe, https_env, admin_https_env, tmp_path,
                                                           branch_name):
    https_round_trip([str(exe)], https_env, admin_https_env, tmp_path, branch_name)
