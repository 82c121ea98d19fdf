"""Enrollment's rules over a real store's status, before the cloud is asked and after it answered."""

from dataclasses import replace

import pytest

from branch_client import enrollment
from branch_client import status as branch_status
from branch_client.errors import AlreadyEnrolled, BadEnrollmentCode
from branch_client.sale_entry import parse_items


def test_an_enrolled_home_is_replaced_only_with_force(enrolled):
    info = branch_status.read(enrolled)
    with pytest.raises(AlreadyEnrolled, match="--force"):
        enrollment.may_enroll(info, force=False)
    enrollment.may_enroll(info, force=True)
    enrollment.may_enroll(replace(info, enrolled=False), force=False)


def test_a_home_with_sales_of_one_branch_is_never_enrolled_as_another(stocked, fake_cloud):
    stocked.save_identity(fake_cloud.identity())
    stocked.record_sale(parse_items(["SOAP=1"]))
    info = branch_status.read(stocked)
    with pytest.raises(AlreadyEnrolled, match="its own home"):
        enrollment.may_take(info, "chittagong-2")
    enrollment.may_take(info, fake_cloud.branch)  # the same branch again (a new code after a rotation) is fine


def test_a_code_that_does_not_decode_is_bad_input_that_looks_mistyped():
    with pytest.raises(BadEnrollmentCode, match="looks mistyped"):
        enrollment.parse_code("BSE1.eyJ1cmwi")
