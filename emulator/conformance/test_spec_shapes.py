"""Raw responses compared with the shapes of the REST specs' own examples, for the exact
api-versions the provider pins. The SDK tests above would tolerate extra or missing fields;
these do not tolerate missing ones."""

import requests

from conftest import ARM_SCOPE, LIVE_PRINCIPAL as LIVE, SUBSCRIPTION

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


# Shapes of the other operations the provider and the SDKs use, from the same specs'
# examples (Microsoft.Authorization 2022-04-01 GetRoleDefinitionById and
# GetPermissions, Microsoft.Resources Subscriptions_Get and Subscriptions_ListLocations,
# Microsoft.Compute VirtualMachines_Get and ListAll), Graph v1.0's documented responses,
# and the cloud metadata document azurerm reads.
ROLE_DEFINITION = keys(
    "id", "name", "type",
    properties=keys("roleName", "type", "description", "assignableScopes", "permissions"),
)
PERMISSION = keys("actions", "notActions")
SUBSCRIPTION_DOC = keys("id", "subscriptionId", "displayName", "state", "subscriptionPolicies")
LOCATION = keys("id", "name", "displayName", "regionalDisplayName", "metadata")
VIRTUAL_MACHINE = keys(
    "id", "name", "type", "location",
    properties=keys("hardwareProfile", "storageProfile", "osProfile", "networkProfile", "provisioningState"),
)
SERVICE_PRINCIPAL = keys("id", "appId", "displayName", "servicePrincipalType")
METADATA = keys(
    "name", "resourceManager", "microsoftGraphResourceId", "graph",
    authentication=keys("loginEndpoint", "audiences"),
)


def test_list_results_have_value_and_page_with_next_link(emulator, credential):
    first = _get(emulator, credential, f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines", "2024-07-01")
    assert set(first) == {"value", "nextLink"}, "page size 3 in the scenario: more than one page"
    assert len(first["value"]) == 3
    for machine in first["value"]:
        assert _skeleton_missing(VIRTUAL_MACHINE, machine) == []


def test_role_definition_shape(emulator, credential):
    body = _get(
        emulator, credential,
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "2022-04-01",
    )
    assert _skeleton_missing(ROLE_DEFINITION, body) == []
    assert body["type"] == "Microsoft.Authorization/roleDefinitions"
    assert body["properties"]["roleName"] == "Reader"
    for permission in body["properties"]["permissions"]:
        assert _skeleton_missing(PERMISSION, permission) == []


def test_permissions_shape(emulator, credential):
    body = _get(emulator, credential, f"{GROUP}/providers/Microsoft.Authorization/permissions", "2022-04-01")
    assert body["value"]
    for permission in body["value"]:
        assert _skeleton_missing(PERMISSION, permission) == []


def test_subscription_and_locations_shapes(emulator, credential):
    body = _get(emulator, credential, f"/subscriptions/{SUBSCRIPTION}", "2022-12-01")
    assert _skeleton_missing(SUBSCRIPTION_DOC, body) == []
    assert body["state"] == "Enabled"
    locations = _get(emulator, credential, f"/subscriptions/{SUBSCRIPTION}/locations", "2022-12-01")
    assert {"eastus", "westeurope"} <= {location["name"] for location in locations["value"]}
    for location in locations["value"]:
        assert _skeleton_missing(LOCATION, location) == []


def test_graph_shapes(emulator, credential):
    token = credential.get_token("https://graph.microsoft.com/.default").token
    base = emulator["graph_endpoint"].rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    by_ids = requests.post(
        f"{base}/v1.0/directoryObjects/getByIds", json={"ids": [LIVE]}, headers=headers,
        verify=emulator["ca_cert_file"], timeout=30,
    ).json()
    assert by_ids["@odata.context"].endswith("$metadata#directoryObjects")
    [found] = by_ids["value"]
    assert _skeleton_missing(SERVICE_PRINCIPAL, found) == []
    single = requests.get(
        f"{base}/v1.0/servicePrincipals/{LIVE}", headers=headers, verify=emulator["ca_cert_file"], timeout=30,
    ).json()
    assert _skeleton_missing(SERVICE_PRINCIPAL, single) == []


def test_metadata_and_token_shapes(emulator):
    host = emulator["metadata_host"]
    metadata = requests.get(
        f"https://{host}/metadata/endpoints", params={"api-version": "2022-09-01"},
        verify=emulator["ca_cert_file"], timeout=30,
    ).json()
    assert _skeleton_missing(METADATA, metadata) == []
    token = requests.post(
        f"{emulator['authority_host'].rstrip('/')}/{emulator['tenant_id']}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": emulator["client_id"],
              "client_secret": emulator["client_secret"], "scope": ARM_SCOPE},
        verify=emulator["ca_cert_file"], timeout=30,
    ).json()
    assert {"token_type", "expires_in", "access_token"} <= set(token)
    assert token["token_type"] == "Bearer"
