"""The fault-injection scenarios, a few seeded trials each (the full counts run in `make faults`).

Each scenario injects real faults into the real processes (branch CLIs, the dev host,
Azurite) and reconciles branch and cloud sale by sale afterwards.
"""

import pytest

from tests.faults.harness import Stack
from tests.faults.scenarios import all_scenarios

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

SCENARIOS = {s.name: s for s in all_scenarios(quick=True)}


@pytest.fixture(scope="module")
def stack(azurite, cloud, tmp_path_factory):
    s = Stack(azurite, cloud, cloud.env["BRANCHSYNC_ADMIN_KEY"], tmp_path_factory.mktemp("faults"))
    s.ensure_catalog()
    yield s
    s.stop()  # only what the scenarios started: the session's Azurite and cloud are the fixtures'


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_sale_is_lost_or_doubled_under_the_scenario_s_faults(stack, name):
    scenario = SCENARIOS[name]
    result = scenario.run_many(stack, list(scenario.quick_seeds))
    assert result.faults_injected > 0, f"{name} injected no fault, so it proved nothing"
    assert result.sales_lost == 0, result.problems
    assert result.sales_duplicated == 0, result.problems
    assert result.problems == []
    assert result.sales_recorded > 0
