"""Credentials from azure-identity: secrets, managed identity (App Service and IMDS styles),
and the errors Entra ID gives for bad ones."""

import base64
import json

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential


def _claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_client_secret_token_has_the_requested_audience(emulator, credential):
    token = credential.get_token("https://management.azure.com/.default")
    claims = _claims(token.token)
    assert claims["aud"].rstrip("/") == "https://management.azure.com"
    assert claims["tid"] == emulator["tenant_id"]
    assert claims["appid"] == emulator["client_id"]
    assert token.expires_on > claims["iat"]


def test_a_wrong_secret_is_refused_with_entras_error(emulator):
    wrong = ClientSecretCredential(
        emulator["tenant_id"],
        emulator["client_id"],
        "not-the-secret",
        authority=emulator["authority_host"],
        disable_instance_discovery=True,
    )
    with pytest.raises(ClientAuthenticationError) as error:
        wrong.get_token("https://management.azure.com/.default")
    assert "AADSTS7000215" in str(error.value)


def test_managed_identity_app_service_endpoint(emulator, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator["managed_identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", emulator["managed_identity_header"])
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    claims = _claims(token.token)
    assert claims["idtyp"] == "app"
    assert claims["aud"].rstrip("/") == "https://management.azure.com"


def test_managed_identity_by_client_id_gets_that_identity(emulator, credential, monkeypatch):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    from conftest import arm_client

    app = arm_client(ManagedServiceIdentityClient, emulator, credential).user_assigned_identities.get("rg-app", "id-app")
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator["managed_identity_endpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", emulator["managed_identity_header"])
    token = ManagedIdentityCredential(client_id=app.client_id).get_token("https://management.azure.com/.default")
    claims = _claims(token.token)
    assert claims["oid"] == app.principal_id
    assert claims["xms_mirid"].lower() == app.id.lower()


def test_managed_identity_imds_endpoint(emulator, monkeypatch):
    # azure-identity's documented override of the IMDS host (169.254.169.254 in Azure).
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator["arm_endpoint"].rstrip("/"))
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    assert _claims(token.token)["aud"].rstrip("/") == "https://management.azure.com"
