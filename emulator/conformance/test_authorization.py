"""Role definitions, role assignments and permissions through azure-mgmt-authorization, and
the Microsoft Graph calls that tell whether a principal still exists."""

import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from conftest import DELETED_PRINCIPAL, GRAPH_SCOPE, LIVE_PRINCIPAL, SUBSCRIPTION, arm_client

GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def test_built_in_role_definitions_have_their_real_ids(emulator, credential):
    client = arm_client(AuthorizationManagementClient, emulator, credential)
    [reader] = list(client.role_definitions.list(f"/subscriptions/{SUBSCRIPTION}", filter="roleName eq 'Reader'"))
    assert reader.name == READER
    assert reader.role_type == "BuiltInRole"
    assert "*/read" in reader.permissions[0].actions


def test_role_definitions_list_at_a_scope_and_get_by_id(emulator, credential):
    client = arm_client(AuthorizationManagementClient, emulator, credential)
    listed = {d.role_name: d for d in client.role_definitions.list(GROUP)}
    assert {"Owner", "Contributor", "Reader", "Virtual Machine Contributor"} <= set(listed), sorted(listed)
    for definition in listed.values():
        assert definition.type == "Microsoft.Authorization/roleDefinitions"
        assert definition.role_type == "BuiltInRole"
    reader = client.role_definitions.get_by_id(listed["Reader"].id)
    assert (reader.name, reader.role_name) == (READER, "Reader")
    assert reader.id.lower() == listed["Reader"].id.lower()
    assert client.role_definitions.get(GROUP, READER).role_name == "Reader"
    with pytest.raises(HttpResponseError) as error:
        client.role_definitions.get_by_id(f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}")
    assert error.value.status_code == 404


def test_role_assignment_lifecycle(emulator, credential):
    client = arm_client(AuthorizationManagementClient, emulator, credential)
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    app = msi.user_assigned_identities.get("rg-app", "id-app")
    name = str(uuid.uuid4())
    role = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    created = client.role_assignments.create(
        GROUP, name, {"role_definition_id": role, "principal_id": app.principal_id, "principal_type": "ServicePrincipal"}
    )
    assert created.name == name
    assert created.scope.lower() == GROUP.lower()
    assert created.principal_id == app.principal_id
    assert created.created_on is not None

    with pytest.raises(HttpResponseError) as error:
        client.role_assignments.create(GROUP, str(uuid.uuid4()), {"role_definition_id": role, "principal_id": app.principal_id})
    assert error.value.status_code == 409
    assert error.value.error.code == "RoleAssignmentExists"

    at_scope = list(client.role_assignments.list_for_scope(GROUP, filter="atScope()"))
    assert name in [a.name for a in at_scope]
    mine = list(client.role_assignments.list_for_scope(GROUP, filter=f"principalId eq '{app.principal_id}'"))
    assert [a.name for a in mine] == [name]

    client.role_assignments.delete(GROUP, name)
    with pytest.raises(ResourceNotFoundError):
        client.role_assignments.get(GROUP, name)


def test_unknown_principal_is_principal_not_found(emulator, credential):
    client = arm_client(AuthorizationManagementClient, emulator, credential)
    role = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    with pytest.raises(HttpResponseError) as error:
        client.role_assignments.create(GROUP, str(uuid.uuid4()), {"role_definition_id": role, "principal_id": str(uuid.uuid4())})
    assert error.value.status_code == 400
    assert error.value.error.code == "PrincipalNotFound"


def test_seeded_orphan_keeps_its_creation_time(emulator, credential):
    client = arm_client(AuthorizationManagementClient, emulator, credential)
    [orphan] = list(client.role_assignments.list_for_scope(GROUP, filter=f"principalId eq '{DELETED_PRINCIPAL}'"))
    assert orphan.created_on.isoformat().startswith("2025-01-02T03:04:05")


def test_permissions_of_the_owner(emulator, credential):
    client = arm_client(AuthorizationManagementClient, emulator, credential)
    permissions = list(client.permissions.list_for_resource_group("rg-app"))
    assert any("*" in p.actions for p in permissions)


def _graph(emulator, credential, method, path, **kwargs):
    token = credential.get_token(GRAPH_SCOPE).token
    return requests.request(
        method,
        emulator["graph_endpoint"].rstrip("/") + path,
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator["ca_cert_file"],
        timeout=30,
        **kwargs,
    )


def test_graph_get_by_ids_returns_only_existing_objects(emulator, credential):
    response = _graph(
        emulator, credential, "POST", "/v1.0/directoryObjects/getByIds", json={"ids": [LIVE_PRINCIPAL, DELETED_PRINCIPAL]}
    )
    assert response.status_code == 200, response.text
    found = response.json()["value"]
    assert [o["id"] for o in found] == [LIVE_PRINCIPAL]
    assert found[0]["@odata.type"] == "#microsoft.graph.servicePrincipal"

    missing = _graph(emulator, credential, "GET", f"/v1.0/servicePrincipals/{DELETED_PRINCIPAL}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


def test_an_arm_token_is_refused_by_graph(emulator, credential):
    token = credential.get_token("https://management.azure.com/.default").token
    response = requests.get(
        emulator["graph_endpoint"].rstrip("/") + f"/v1.0/servicePrincipals/{LIVE_PRINCIPAL}",
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator["ca_cert_file"],
        timeout=30,
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
