"""Virtual machines and scale sets through azure-mgmt-compute: paging, identity updates as
long-running operations, and optimistic concurrency with If-Match."""

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import (
    UserAssignedIdentitiesValue,
    VirtualMachineIdentity,
    VirtualMachineScaleSetIdentity,
    VirtualMachineScaleSetUpdate,
    VirtualMachineUpdate,
)
from azure.mgmt.msi import ManagedServiceIdentityClient

from conftest import arm_client
from sdk import ComputeManagementClient, if_match


def test_list_all_follows_next_link_across_pages(emulator, credential, admin):
    client = arm_client(ComputeManagementClient, emulator, credential)
    admin.delete("requests")
    names = [vm.name for vm in client.virtual_machines.list_all()]
    assert len(names) == len(set(names)) >= 8
    assert "vm-one-uami" in names
    pages = [r for r in admin.get("requests") if r["path"].endswith("/virtualMachines")]
    # page_size is 3 in the scenario: the SDK had to follow nextLink to see every VM.
    assert len(pages) >= 3, pages


def test_identity_update_is_long_running_and_merges(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    app = msi.user_assigned_identities.get("rg-app", "id-app")

    poller = compute.virtual_machines.begin_update(
        "rg-app",
        "vm-1",
        VirtualMachineUpdate(
            identity=VirtualMachineIdentity(
                type="SystemAssigned, UserAssigned",
                user_assigned_identities={app.id: UserAssignedIdentitiesValue()},
            )
        ),
    )
    vm = poller.result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.identity.type == "SystemAssigned, UserAssigned"
    assert vm.identity.principal_id
    [(key, value)] = vm.identity.user_assigned_identities.items()
    assert key.lower() == app.id.lower()
    assert value.principal_id == app.principal_id
    assert value.client_id == app.client_id

    fetched = compute.virtual_machines.get("rg-app", "vm-1")
    assert fetched.identity.type == "SystemAssigned, UserAssigned"


def test_if_match_with_a_stale_etag_is_refused(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    vm = compute.virtual_machines.get("rg-app", "vm-2")
    assert vm.etag, "Compute 2023-09-01 and later return an etag"
    compute.virtual_machines.begin_update("rg-app", "vm-2", VirtualMachineUpdate(tags={"a": "1"})).result()

    with pytest.raises(HttpResponseError) as error:
        compute.virtual_machines.begin_update(
            "rg-app",
            "vm-2",
            VirtualMachineUpdate(tags={"a": "2"}),
            **if_match(compute.virtual_machines.begin_update, vm.etag),
        ).result()
    assert error.value.status_code == 412

    current = compute.virtual_machines.get("rg-app", "vm-2")
    assert current.tags == {"a": "1"}
    updated = compute.virtual_machines.begin_update(
        "rg-app",
        "vm-2",
        VirtualMachineUpdate(tags={"a": "2"}),
        **if_match(compute.virtual_machines.begin_update, current.etag),
    ).result()
    assert updated.tags == {"a": "2"}
    assert updated.etag != current.etag


def test_invalid_identity_transition_gets_computes_error(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    app = msi.user_assigned_identities.get("rg-app", "id-app")
    with pytest.raises(HttpResponseError) as error:
        compute.virtual_machines.begin_update(
            "rg-app",
            "vm-3",
            VirtualMachineUpdate(
                identity=VirtualMachineIdentity(
                    type="SystemAssigned",
                    user_assigned_identities={app.id: UserAssignedIdentitiesValue()},
                )
            ),
        ).result()
    assert error.value.status_code == 400
    assert error.value.error.code == "InvalidParameter"


def test_scale_set_identity_update(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    app = msi.user_assigned_identities.get("rg-app", "id-app")
    scale_set = compute.virtual_machine_scale_sets.begin_update(
        "rg-app",
        "ss-1",
        VirtualMachineScaleSetUpdate(
            identity=VirtualMachineScaleSetIdentity(
                type="UserAssigned",
                user_assigned_identities={app.id: UserAssignedIdentitiesValue()},
            )
        ),
    ).result()
    assert scale_set.identity.type == "UserAssigned"
    assert [k.lower() for k in scale_set.identity.user_assigned_identities] == [app.id.lower()]
    assert "ss-1" in [s.name for s in compute.virtual_machine_scale_sets.list_all()]
