"""Raw responses compared with the shapes of the REST specs' own examples, for the exact
api-versions the provider pins. The SDK tests above would tolerate extra or missing fields;
these do not tolerate missing ones."""

import requests

from conftest import ARM_SCOPE, SUBSCRIPTION

GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app"

# Key skeletons of the 200 bodies in the specs' examples (IdentityGet.json for
# Microsoft.ManagedIdentity 2023-01-31, RoleAssignments_Get.json for Microsoft.Authorization
# 2022-04-01, ManagementLocks GetAtResourceLevel for 2020-05-01, ResourceGroups Get, and the
# identity block of VirtualMachines Get for Compute 2024-07-01).
def keys(*names, **nested):
    """A skeleton: leaf key names, and nested skeletons by key."""
    return {**{name: None for name in names}, **nested}


IDENTITY = keys("id", "name", "type", "location", "tags", properties=keys("clientId", "principalId", "tenantId"))
ROLE_ASSIGNMENT = keys(
    "id", "name", "type", properties=keys("roleDefinitionId", "principalId", "principalType", "scope", "createdOn")
)
LOCK = keys("id", "name", "type", properties=keys("level", "notes"))
RESOURCE_GROUP = keys("id", "name", "type", "location", properties=keys("provisioningState"))
# principalId / tenantId belong to a system-assigned identity, absent for UserAssigned alone.
VM_IDENTITY = keys("type", "userAssignedIdentities")


def _skeleton_missing(expected, body, path=""):
    """The keys of the skeleton `expected` that `body` lacks, as dotted paths."""
    missing = []
    for name, nested in expected.items():
        if name not in body:
            missing.append(path + name)
        elif nested is not None:
            missing += _skeleton_missing(nested, body[name], f"{path}{name}.")
    return missing


def _get(emulator, credential, path, api_version):
    token = credential.get_token(ARM_SCOPE).token
    response = requests.get(
        emulator["arm_endpoint"].rstrip("/") + path,
        params={"api-version": api_version},
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator["ca_cert_file"],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["x-ms-request-id"]
    return response.json()


def _put(emulator, credential, path, api_version, body):
    token = credential.get_token(ARM_SCOPE).token
    response = requests.put(
        emulator["arm_endpoint"].rstrip("/") + path,
        params={"api-version": api_version},
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator["ca_cert_file"],
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_identity_shape(emulator, credential):
    path = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-shape"
    _put(emulator, credential, path, "2023-01-31", {"location": "eastus", "tags": {"key1": "value1"}})
    body = _get(emulator, credential, path, "2023-01-31")
    assert _skeleton_missing(IDENTITY, body) == []
    assert body["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"


def test_role_assignment_shape(emulator, credential):
    listed = _get(emulator, credential, f"{GROUP}/providers/Microsoft.Authorization/roleAssignments", "2022-04-01")
    assert listed["value"], "the scenario seeds role assignments"
    for assignment in listed["value"]:
        assert _skeleton_missing(ROLE_ASSIGNMENT, assignment) == []
        assert assignment["type"] == "Microsoft.Authorization/roleAssignments"
        assert assignment["properties"]["roleDefinitionId"].startswith(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/")


def test_lock_shape(emulator, credential):
    path = f"{GROUP}/providers/Microsoft.Authorization/locks/shape"
    _put(emulator, credential, path, "2020-05-01", {"properties": {"level": "ReadOnly", "notes": "n"}})
    body = _get(emulator, credential, path, "2020-05-01")
    assert _skeleton_missing(LOCK, body) == []
    assert body["type"] == "Microsoft.Authorization/locks"
    token = credential.get_token(ARM_SCOPE).token
    requests.delete(
        emulator["arm_endpoint"].rstrip("/") + path,
        params={"api-version": "2020-05-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator["ca_cert_file"],
        timeout=30,
    ).raise_for_status()


def test_resource_group_shape(emulator, credential):
    body = _get(emulator, credential, GROUP, "2022-09-01")
    assert _skeleton_missing(RESOURCE_GROUP, body) == []
    assert body["type"] == "Microsoft.Resources/resourceGroups"


def test_virtual_machine_identity_shape(emulator, credential):
    body = _get(emulator, credential, f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm-one-uami", "2024-07-01")
    assert body["type"] == "Microsoft.Compute/virtualMachines"
    assert body["identity"]["type"] == "UserAssigned"
    assert _skeleton_missing(VM_IDENTITY, body["identity"]) == []
    assert "principalId" not in body["identity"]
    [value] = body["identity"]["userAssignedIdentities"].values()
    assert set(value) == {"principalId", "clientId"}
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert "etag" in body
