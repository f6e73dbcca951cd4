"""Management groups (Microsoft.Management, read-only as the emulator serves them) through
azure-mgmt-managementgroups: list, get with $expand=children&$recurse=true, descendants and
the subscriptions in a group. scenario.json: root -> mg-platform -> mg-prod -> the subscription."""

import pytest
from azure.core.exceptions import HttpResponseError

from conftest import ARM_SCOPE, SUBSCRIPTION
from sdk import ManagementGroupsClient


@pytest.fixture
def groups(emulator, credential):
    # A tenant-level client: no subscription ID.
    return ManagementGroupsClient(credential, base_url=emulator["arm_endpoint"], credential_scopes=[ARM_SCOPE])


def test_list_follows_next_link(emulator, groups, admin):
    admin.delete("requests")
    listed = {g.name: g for g in groups.management_groups.list()}
    assert set(listed) == {emulator["tenant_id"], "mg-platform", "mg-prod"}, listed
    assert listed["mg-prod"].display_name == "Production"
    assert listed["mg-prod"].tenant_id == emulator["tenant_id"]
    assert listed["mg-prod"].id == "/providers/Microsoft.Management/managementGroups/mg-prod"
    pages = [r for r in admin.get("requests") if r["path"].endswith("/managementGroups")]
    # page_size is 3 in the scenario and there are 3 groups: one page, no @nextLink.
    assert len(pages) == 1, pages


def test_get_with_recursive_children(emulator, groups):
    root = groups.management_groups.get(emulator["tenant_id"], expand="children", recurse=True)
    assert root.display_name == "Tenant Root Group"
    assert root.details.parent is None
    [platform] = root.children
    assert (platform.name, platform.display_name) == ("mg-platform", "Platform")
    assert platform.type == "Microsoft.Management/managementGroups"
    [prod] = platform.children
    assert prod.name == "mg-prod"
    [subscription] = prod.children
    assert subscription.type == "/subscriptions"
    assert subscription.name == SUBSCRIPTION
    assert subscription.display_name == "Conformance"

    prod = groups.management_groups.get("mg-prod", expand="children", filter="children.childType ne Subscription")
    assert prod.details.parent.name == "mg-platform"
    assert not prod.children


def test_descendants_page_with_top(emulator, groups, admin):
    admin.delete("requests")
    below = list(groups.management_groups.get_descendants(emulator["tenant_id"], top=1))
    assert [(d.name, d.type) for d in below] == [
        ("mg-platform", "Microsoft.Management/managementGroups"),
        ("mg-prod", "Microsoft.Management/managementGroups"),
        (SUBSCRIPTION, "Microsoft.Management/managementGroups/subscriptions"),
    ]
    assert below[2].parent.id == "/providers/Microsoft.Management/managementGroups/mg-prod"
    assert below[2].display_name == "Conformance"
    pages = [r for r in admin.get("requests") if r["path"].endswith("/descendants")]
    assert len(pages) == 3, pages


def test_subscriptions_under_a_group(groups):
    [subscription] = list(groups.management_group_subscriptions.get_subscriptions_under_management_group("mg-prod"))
    assert subscription.name == SUBSCRIPTION
    assert subscription.parent.id == "/providers/Microsoft.Management/managementGroups/mg-prod"
    one = groups.management_group_subscriptions.get_subscription("mg-prod", SUBSCRIPTION)
    assert one.display_name == "Conformance"
    assert one.state == "Active"
    assert list(groups.management_group_subscriptions.get_subscriptions_under_management_group("mg-platform")) == []


def test_an_unknown_group_is_forbidden_not_missing(groups):
    with pytest.raises(HttpResponseError) as error:
        groups.management_groups.get("mg-nope")
    assert error.value.status_code == 403
    assert error.value.error.code == "AuthorizationFailed"
