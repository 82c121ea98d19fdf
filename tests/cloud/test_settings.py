"""App settings: read once, and an admin key that cannot be trusted counts as none."""

import pytest

from branchsync_cloud.request_auth import check_admin
from branchsync_cloud.settings import Settings
from shared.errors import ContractError, ErrorCode

REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-abc123.vault.azure.net/secrets/branchsync-admin-key/)"


@pytest.mark.parametrize("raw, state", [
    ("s3cret-key", "set"), ("", "empty"), ("   ", "empty"), (REFERENCE, "unresolved_reference"),
    ("  @microsoft.keyvault(VaultName=kv-abc123;SecretName=branchsync-admin-key)", "unresolved_reference"),
])
def test_the_admin_key_setting_is_usable_only_when_set_to_something_other_than_a_key_vault_reference(raw, state):
    settings = Settings.from_env({"BRANCHSYNC_ADMIN_KEY": raw})
    assert settings.admin_key_state == state
    assert (settings.usable_admin_key is not None) == (state == "set")
    assert (settings.admin_key_problem is None) == (state == "set")


@pytest.mark.parametrize("raw", [REFERENCE, ""])
def test_an_unresolved_or_empty_key_refuses_every_admin_request_even_one_presenting_the_literal(raw):
    settings = Settings.from_env({"BRANCHSYNC_ADMIN_KEY": raw})
    with pytest.raises(ContractError) as err:
        check_admin(settings, raw)  # the literal is guessable: the vault's name is in the public host name
    assert err.value.code == ErrorCode.UNAUTHENTICATED
    assert "unusable" in err.value.message and "restart the app" in err.value.message


def test_an_unresolved_reference_is_reported_as_such_with_what_to_check():
    problem = Settings.from_env({"BRANCHSYNC_ADMIN_KEY": REFERENCE}).admin_key_problem
    assert "Key Vault reference" in problem and "did not resolve" in problem
    assert "Key Vault Secrets User" in problem and "keyVaultReferenceIdentity" in problem


def test_a_usable_key_still_opens_the_admin_api():
    check_admin(Settings.from_env({"BRANCHSYNC_ADMIN_KEY": "s3cret-key"}), "s3cret-key")


@pytest.mark.parametrize("raw, mode", [(None, "queue"), ("queue", "queue"), (" Route ", "route"), ("sas", "queue")])
def test_the_push_mode_is_route_only_when_set_so_and_queue_otherwise(raw, mode):
    env = {} if raw is None else {"BRANCHSYNC_PUSH_MODE": raw}
    assert Settings.from_env(env).push_mode == mode


@pytest.mark.parametrize("raw, zone", [(None, "Asia/Dhaka"), ("", "Asia/Dhaka"), (" Asia/Kolkata ", "Asia/Kolkata")])
def test_the_business_day_is_in_asia_dhaka_unless_another_zone_is_set(raw, zone):
    env = {} if raw is None else {"BRANCHSYNC_BUSINESS_TIMEZONE": raw}
    assert Settings.from_env(env).business_zone.key == zone


def test_a_business_timezone_that_is_no_zone_is_refused_with_what_to_give():
    with pytest.raises(ValueError, match="BRANCHSYNC_BUSINESS_TIMEZONE 'Dhaka' is not a time zone; give an IANA name"):
        Settings.from_env({"BRANCHSYNC_BUSINESS_TIMEZONE": "Dhaka"}).business_zone
