"""Virtual machines and scale sets through azure-mgmt-compute: create and delete as long-running
operations, locks at their scope, paging, identity updates, and optimistic concurrency with
If-Match."""

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    HardwareProfile,
    Sku,
    VirtualMachine,
    VirtualMachineScaleSet,
    UserAssignedIdentitiesValue,
    VirtualMachineIdentity,
    VirtualMachineScaleSetIdentity,
    VirtualMachineScaleSetUpdate,
    VirtualMachineUpdate,
)
from azure.mgmt.msi import ManagedServiceIdentityClient

from conftest import arm_client
from sdk import ComputeManagementClient, ManagementLockClient, if_match


def test_vm_create_read_list_lock_delete(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    locks = arm_client(ManagementLockClient, emulator, credential)
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    app = msi.user_assigned_identities.get("rg-app", "id-app")
    name = f"vm-py-{uuid.uuid4().hex[:8]}"
    created = compute.virtual_machines.begin_create_or_update(
        "rg-app",
        name,
        VirtualMachine(
            location="eastus",
            tags={"env": "py"},
            hardware_profile=HardwareProfile(vm_size="Standard_B1s"),
            identity=VirtualMachineIdentity(
                type="UserAssigned", user_assigned_identities={app.id: UserAssignedIdentitiesValue()}
            ),
        ),
    ).result()
    assert created.provisioning_state == "Succeeded"
    assert created.hardware_profile.vm_size == "Standard_B1s"
    assert [k.lower() for k in created.identity.user_assigned_identities] == [app.id.lower()]
    fetched = compute.virtual_machines.get("rg-app", name)
    assert fetched.tags == {"env": "py"}
    assert fetched.etag
    assert name in [vm.name for vm in compute.virtual_machines.list("rg-app")]

    lock = locks.management_locks.create_or_update_by_scope(created.id, "ro", {"level": "ReadOnly", "notes": "py"})
    assert lock.id.lower() == f"{created.id}/providers/Microsoft.Authorization/locks/ro".lower()
    assert [l.name for l in locks.management_locks.list_by_scope(created.id)] == ["ro"]
    assert locks.management_locks.get_by_scope(created.id, "ro").level == "ReadOnly"
    for blocked in (
        lambda: compute.virtual_machines.begin_update("rg-app", name, VirtualMachineUpdate(tags={"b": "1"})).result(),
        lambda: compute.virtual_machines.begin_delete("rg-app", name).result(),
    ):
        with pytest.raises(HttpResponseError) as error:
            blocked()
        assert error.value.status_code == 409
        assert error.value.error.code == "ScopeLocked"
    locks.management_locks.delete_by_scope(created.id, "ro")

    # begin_delete polls Azure-AsyncOperation until the operation is done.
    compute.virtual_machines.begin_delete("rg-app", name, polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError) as error:
        compute.virtual_machines.get("rg-app", name)
    assert error.value.error.code == "ResourceNotFound"


def test_scale_set_create_read_list_lock_delete(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    locks = arm_client(ManagementLockClient, emulator, credential)
    name = f"ss-py-{uuid.uuid4().hex[:8]}"
    created = compute.virtual_machine_scale_sets.begin_create_or_update(
        "rg-app",
        name,
        VirtualMachineScaleSet(location="eastus", tags={"env": "py"}, sku=Sku(name="Standard_B1s", capacity=2)),
    ).result()
    assert created.provisioning_state == "Succeeded"
    assert created.sku.name == "Standard_B1s"
    assert compute.virtual_machine_scale_sets.get("rg-app", name).tags == {"env": "py"}
    assert name in [s.name for s in compute.virtual_machine_scale_sets.list("rg-app")]

    locks.management_locks.create_or_update_by_scope(created.id, "keep", {"level": "CanNotDelete"})
    with pytest.raises(HttpResponseError) as error:
        compute.virtual_machine_scale_sets.begin_delete("rg-app", name).result()
    assert error.value.status_code == 409
    assert error.value.error.code == "ScopeLocked"
    # CanNotDelete still allows updates.
    updated = compute.virtual_machine_scale_sets.begin_update(
        "rg-app", name, VirtualMachineScaleSetUpdate(tags={"env": "locked"})
    ).result()
    assert updated.tags == {"env": "locked"}
    locks.management_locks.delete_by_scope(created.id, "keep")

    compute.virtual_machine_scale_sets.begin_delete("rg-app", name, polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machine_scale_sets.get("rg-app", name)


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
