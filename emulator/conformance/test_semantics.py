"""Identity null removal and bad input through the SDKs' own pipelines (both Python lines)."""

import uuid

import pytest
from azure.core.rest import HttpRequest
from azure.mgmt.compute.models import UserAssignedIdentitiesValue, VirtualMachineIdentity, VirtualMachineUpdate
from azure.mgmt.msi import ManagedServiceIdentityClient

from conftest import arm_client
from sdk import ComputeManagementClient


def test_a_null_key_removes_that_identity_and_keeps_the_others(emulator, credential):
    compute = arm_client(ComputeManagementClient, emulator, credential)
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    app = msi.user_assigned_identities.get("rg-app", "id-app")
    second = msi.user_assigned_identities.create_or_update("rg-app", f"id-{uuid.uuid4().hex[:8]}", {"location": "eastus"})
    for identity in (app, second):
        compute.virtual_machines.begin_update(
            "rg-app", "vm-6",
            VirtualMachineUpdate(identity=VirtualMachineIdentity(
                type="UserAssigned", user_assigned_identities={identity.id: UserAssignedIdentitiesValue()})),
        ).result()
    vm = compute.virtual_machines.get("rg-app", "vm-6")
    assert sorted(k.lower() for k in vm.identity.user_assigned_identities) == sorted([app.id.lower(), second.id.lower()])
    compute.virtual_machines.begin_update(
        "rg-app", "vm-6",
        VirtualMachineUpdate(identity=VirtualMachineIdentity(
            type="UserAssigned", user_assigned_identities={second.id: None})),
    ).result()
    vm = compute.virtual_machines.get("rg-app", "vm-6")
    assert [k.lower() for k in vm.identity.user_assigned_identities] == [app.id.lower()]


@pytest.mark.parametrize(
    "body, message",
    [
        ("{not json", "The request content was invalid and could not be deserialized: '"),
        ('{"tags": "x"}', "Error converting value \"x\" to type"),
        ('[1, 2]', "Cannot deserialize the current JSON array"),
    ],
)
def test_bad_bodies_get_arms_invalid_request_content(emulator, credential, body, message):
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    url = (f"{emulator['arm_endpoint']}subscriptions/{emulator['subscription_ids'][0]}/resourceGroups/rg-app"
           "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app?api-version=2024-11-30")
    response = msi._client.send_request(
        HttpRequest("PATCH", url, content=body, headers={"Content-Type": "application/json"}))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequestContent"
    assert message in response.json()["error"]["message"]


def test_an_unknown_api_version_gets_no_registered_provider_found(emulator, credential):
    # The multi-API SDK refuses an unknown version client-side, so send it through its pipeline.
    msi = arm_client(ManagedServiceIdentityClient, emulator, credential)
    url = (f"{emulator['arm_endpoint']}subscriptions/{emulator['subscription_ids'][0]}/resourceGroups/rg-app"
           "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app?api-version=2099-01-01")
    response = msi._client.send_request(HttpRequest("GET", url))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert "API version '2099-01-01'" in error["message"]
