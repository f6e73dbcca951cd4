"""Resource groups, user-assigned identities and management locks through azure-mgmt-resource
and azure-mgmt-msi."""

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient

from conftest import arm_client
from sdk import ManagementLockClient, ResourceManagementClient


def test_resource_group_lifecycle_with_long_running_delete(emulator, credential):
    client = arm_client(ResourceManagementClient, emulator, credential)
    name = f"rg-{uuid.uuid4().hex[:8]}"
    created = client.resource_groups.create_or_update(name, {"location": "westeurope", "tags": {"k": "v"}})
    assert created.name == name
    assert created.location == "westeurope"
    assert created.properties.provisioning_state == "Succeeded"
    assert client.resource_groups.check_existence(name) is True
    assert name in [group.name for group in client.resource_groups.list()]

    # begin_delete polls the Location header until the operation is done.
    client.resource_groups.begin_delete(name).result()
    assert client.resource_groups.check_existence(name) is False
    with pytest.raises(ResourceNotFoundError) as error:
        client.resource_groups.get(name)
    assert error.value.error.code == "ResourceGroupNotFound"


def test_identity_crud_returns_server_generated_ids(emulator, credential):
    client = arm_client(ManagedServiceIdentityClient, emulator, credential)
    name = f"id-{uuid.uuid4().hex[:8]}"
    identity = client.user_assigned_identities.create_or_update("rg-app", name, {"location": "eastus"})
    assert identity.type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    # Microsoft.ManagedIdentity writes `resourcegroups` in lower case, as its spec examples show.
    assert identity.id.lower().endswith(f"/resourcegroups/rg-app/providers/microsoft.managedidentity/userassignedidentities/{name}")
    for generated in (identity.principal_id, identity.client_id, identity.tenant_id):
        uuid.UUID(generated)
    assert identity.tenant_id == emulator["tenant_id"]

    fetched = client.user_assigned_identities.get("rg-app", name)
    assert (fetched.principal_id, fetched.client_id) == (identity.principal_id, identity.client_id)

    updated = client.user_assigned_identities.update("rg-app", name, {"tags": {"owner": "sdk"}})
    assert updated.tags == {"owner": "sdk"}
    assert updated.principal_id == identity.principal_id

    in_group = [i.name for i in client.user_assigned_identities.list_by_resource_group("rg-app")]
    in_subscription = [i.name for i in client.user_assigned_identities.list_by_subscription()]
    assert name in in_group and "id-app" in in_group
    assert name in in_subscription

    client.user_assigned_identities.delete("rg-app", name)
    with pytest.raises(ResourceNotFoundError):
        client.user_assigned_identities.get("rg-app", name)


def test_can_not_delete_lock_blocks_deletion_until_removed(emulator, credential):
    identities = arm_client(ManagedServiceIdentityClient, emulator, credential)
    locks = arm_client(ManagementLockClient, emulator, credential)
    name = f"id-{uuid.uuid4().hex[:8]}"
    identity = identities.user_assigned_identities.create_or_update("rg-app", name, {"location": "eastus"})

    lock = locks.management_locks.create_or_update_by_scope(
        identity.id, "keep", {"level": "CanNotDelete", "notes": "conformance"}
    )
    assert lock.level == "CanNotDelete"
    assert lock.notes == "conformance"
    assert lock.id.lower() == f"{identity.id}/providers/Microsoft.Authorization/locks/keep".lower()
    assert [l.name for l in locks.management_locks.list_by_scope(identity.id)] == ["keep"]

    with pytest.raises(HttpResponseError) as error:
        identities.user_assigned_identities.delete("rg-app", name)
    assert error.value.status_code == 409
    assert error.value.error.code == "ScopeLocked"

    locks.management_locks.delete_by_scope(identity.id, "keep")
    identities.user_assigned_identities.delete("rg-app", name)
    with pytest.raises(ResourceNotFoundError):
        identities.user_assigned_identities.get("rg-app", name)
