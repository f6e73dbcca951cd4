"""The emulator driven by the newest Azure CLI (azure-cli from PyPI), unchanged, as a customer
would use it against a private cloud: `az cloud register` from the emulator's
/metadata/endpoints, `az login --service-principal`, then ordinary commands.

Run by scripts/conformance-cli (one emulator start); plain Python, no test framework, so it
runs with any python3. Each check is a function named test_*, run in file order.
"""

import json
import os
import subprocess
import sys
import time
import uuid

READY = json.load(open(os.environ["EMULATOR_READY_FILE"]))
AZ = os.environ["AZ"]
SUB = READY["subscription_ids"][0]
RG = f"/subscriptions/{SUB}/resourceGroups/rg-app"
ID_APP = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app"


class AzError(Exception):
    def __init__(self, args, code, stderr):
        super().__init__(f"az {' '.join(args)} exited {code}: {stderr.strip()}")
        self.stderr = stderr


def az(*args, parse=True):
    done = subprocess.run([AZ, *args, "--only-show-errors"], capture_output=True, text=True)
    if done.returncode != 0:
        raise AzError(args, done.returncode, done.stderr)
    if parse and done.stdout.strip():
        return json.loads(done.stdout)
    return done.stdout


def az_fails(*args, contains):
    try:
        az(*args)
    except AzError as e:
        assert contains in e.stderr, f"expected {contains!r} in: {e.stderr}"
        return e.stderr
    raise AssertionError(f"az {' '.join(args)} should have failed with {contains}")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_cloud_register_and_login():
    # The CLI reads every endpoint (Graph included) from the emulator's metadata.
    az("cloud", "register", "--name", "Emulator", "--endpoint-resource-manager", READY["arm_endpoint"], parse=False)
    az("cloud", "set", "--name", "Emulator", parse=False)
    cloud = az("cloud", "show", "--name", "Emulator")
    assert cloud["endpoints"]["microsoftGraphResourceId"] == READY["graph_host_endpoint"], cloud["endpoints"]
    assert cloud["endpoints"]["resourceManager"] == READY["arm_endpoint"]
    accounts = az(
        "login", "--service-principal", "--username", READY["client_id"], "--password", READY["client_secret"],
        "--tenant", READY["tenant_id"],
    )
    assert SUB in [a["id"] for a in accounts]
    az("account", "set", "--subscription", SUB, parse=False)


def test_resource_group_create_read_update_list_lock_delete():
    name = unique("rg-cli")
    created = az("group", "create", "--name", name, "--location", "westeurope", "--tags", "k=v")
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert az("group", "show", "--name", name)["tags"] == {"k": "v"}
    assert az("group", "update", "--name", name, "--tags", "k=w")["tags"] == {"k": "w"}
    assert name in [g["name"] for g in az("group", "list")]
    assert az("group", "exists", "--name", name) is True
    az("lock", "create", "--name", "keep", "--lock-type", "CanNotDelete", "--resource-group", name, "--notes", "cli")
    assert [l["name"] for l in az("lock", "list", "--resource-group", name)] == ["keep"]
    assert az("lock", "show", "--name", "keep", "--resource-group", name)["level"] == "CanNotDelete"
    az_fails("group", "delete", "--name", name, "--yes", contains="ScopeLocked")
    az("lock", "delete", "--name", "keep", "--resource-group", name, parse=False)
    az("group", "delete", "--name", name, "--yes", parse=False)
    assert az("group", "exists", "--name", name) is False


def test_identity_create_read_update_list_lock_delete():
    name = unique("id-cli")
    identity = az("identity", "create", "--resource-group", "rg-app", "--name", name, "--location", "eastus")
    for generated in (identity["principalId"], identity["clientId"], identity["tenantId"]):
        uuid.UUID(generated)
    shown = az("identity", "show", "--resource-group", "rg-app", "--name", name)
    assert shown["principalId"] == identity["principalId"]
    updated = az("identity", "update", "--resource-group", "rg-app", "--name", name, "--tags", "owner=cli")
    assert updated["tags"] == {"owner": "cli"}
    assert name in [i["name"] for i in az("identity", "list", "--resource-group", "rg-app")]
    assert name in [i["name"] for i in az("identity", "list")]
    az("lock", "create", "--name", "keep", "--lock-type", "CanNotDelete", "--resource-group", "rg-app",
       "--resource", name, "--resource-type", "Microsoft.ManagedIdentity/userAssignedIdentities")
    az_fails("identity", "delete", "--resource-group", "rg-app", "--name", name, contains="ScopeLocked")
    az("lock", "delete", "--name", "keep", "--resource-group", "rg-app", "--resource", name,
       "--resource-type", "Microsoft.ManagedIdentity/userAssignedIdentities", parse=False)
    az("identity", "delete", "--resource-group", "rg-app", "--name", name, parse=False)
    az_fails("identity", "show", "--resource-group", "rg-app", "--name", name, contains="ResourceNotFound")


def test_vm_identity_assign_merges_and_remove_drops_one():
    second = az("identity", "create", "--resource-group", "rg-app", "--name", unique("id-cli"), "--location", "eastus")
    assigned = az("vm", "identity", "assign", "--resource-group", "rg-app", "--name", "vm-4", "--identities", ID_APP)
    assert [k.lower() for k in assigned["userAssignedIdentities"]] == [ID_APP.lower()], assigned
    assigned = az("vm", "identity", "assign", "--resource-group", "rg-app", "--name", "vm-4",
                  "--identities", "[system]", second["id"])
    assert sorted(k.lower() for k in assigned["userAssignedIdentities"]) == sorted([ID_APP.lower(), second["id"].lower()])
    shown = az("vm", "identity", "show", "--resource-group", "rg-app", "--name", "vm-4")
    assert shown["type"] == "SystemAssigned, UserAssigned", shown
    assert shown["principalId"] == assigned["systemAssignedIdentity"]
    az("vm", "identity", "remove", "--resource-group", "rg-app", "--name", "vm-4", "--identities", second["id"])
    shown = az("vm", "identity", "show", "--resource-group", "rg-app", "--name", "vm-4")
    assert [k.lower() for k in shown["userAssignedIdentities"]] == [ID_APP.lower()], shown
    az("vm", "identity", "remove", "--resource-group", "rg-app", "--name", "vm-4", "--identities", "[system]", ID_APP)
    assert az("vm", "identity", "show", "--resource-group", "rg-app", "--name", "vm-4") in (None, {}, "")


def test_vm_read_update_list_lock_delete():
    vm = az("vm", "show", "--resource-group", "rg-app", "--name", "vm-5")
    assert vm["etag"]
    updated = az("vm", "update", "--resource-group", "rg-app", "--name", "vm-5", "--set", 'tags={"owner": "cli"}')
    assert updated["tags"]["owner"] == "cli"
    names = [v["name"] for v in az("vm", "list", "--resource-group", "rg-app")]
    assert "vm-5" in names and "vm-one-uami" in names
    az("lock", "create", "--name", "ro", "--lock-type", "ReadOnly", "--resource-group", "rg-app",
       "--resource", "vm-5", "--resource-type", "Microsoft.Compute/virtualMachines")
    az_fails("vm", "update", "--resource-group", "rg-app", "--name", "vm-5", "--set", 'tags={"x": "y"}', contains="ScopeLocked")
    az("lock", "delete", "--name", "ro", "--resource-group", "rg-app", "--resource", "vm-5",
       "--resource-type", "Microsoft.Compute/virtualMachines", parse=False)
    az("vm", "delete", "--resource-group", "rg-app", "--name", "vm-5", "--yes", parse=False)
    az_fails("vm", "show", "--resource-group", "rg-app", "--name", "vm-5", contains="ResourceNotFound")


def test_vmss_list_and_identity():
    assert "ss-1" in [s["name"] for s in az("vmss", "list", "--resource-group", "rg-app")]
    assigned = az("vmss", "identity", "assign", "--resource-group", "rg-app", "--name", "ss-1", "--identities", ID_APP)
    assert [k.lower() for k in assigned["userAssignedIdentities"]] == [ID_APP.lower()]
    shown = az("vmss", "identity", "show", "--resource-group", "rg-app", "--name", "ss-1")
    assert shown["type"] == "UserAssigned"


def test_resource_list_expands_created_and_changed_time():
    # `az resource list` sends $expand=createdTime,changedTime,provisioningState.
    items = {r["name"]: r for r in az("resource", "list", "--resource-group", "rg-app")}
    assert items["vm-0"]["createdTime"] and items["vm-0"]["changedTime"], items["vm-0"]
    assert items["vm-0"]["provisioningState"] == "Succeeded"


def test_role_assignments_with_assignee_and_role_definitions():
    identity = az("identity", "create", "--resource-group", "rg-app", "--name", unique("id-cli"), "--location", "eastus")
    reader = az("role", "definition", "list", "--name", "Reader")
    assert [d["roleName"] for d in reader] == ["Reader"]
    # --assignee is resolved through Microsoft Graph, at the address the metadata announced.
    created = az("role", "assignment", "create", "--assignee", identity["principalId"], "--role", "Reader", "--scope", RG)
    assert created["principalId"] == identity["principalId"]
    listed = az("role", "assignment", "list", "--assignee", identity["principalId"], "--scope", RG)
    assert [a["roleDefinitionName"] for a in listed] == ["Reader"], listed
    assert listed[0]["principalName"], listed  # resolved through Graph
    everything = az("role", "assignment", "list", "--scope", RG)
    assert identity["principalId"] in [a["principalId"] for a in everything]
    az("role", "assignment", "delete", "--assignee", identity["principalId"], "--role", "Reader", "--scope", RG, parse=False)
    assert az("role", "assignment", "list", "--assignee", identity["principalId"], "--scope", RG) == []


def test_management_group_list_show_expand_recurse_subscriptions():
    # `az account management-group list/show` register Microsoft.Management first and then
    # sleep 10 s before checking the registration (azure-cli's _register_rp), whatever the
    # server answers: two such calls here, the rest is covered by the SDK suites.
    tenant = READY["tenant_id"]
    listed = {g["name"]: g for g in az("account", "management-group", "list")}
    assert set(listed) == {tenant, "mg-platform", "mg-prod"}, listed
    assert listed["mg-prod"]["displayName"] == "Production"
    root = az("account", "management-group", "show", "--name", tenant, "--expand", "--recurse")
    assert root["displayName"] == "Tenant Root Group"
    assert root["details"]["parent"] is None
    [platform] = root["children"]
    assert (platform["name"], platform["type"]) == ("mg-platform", "Microsoft.Management/managementGroups")
    [prod] = platform["children"]
    assert prod["name"] == "mg-prod"
    assert [(c["type"], c["name"]) for c in prod["children"]] == [("/subscriptions", SUB)], prod
    subs = az("account", "management-group", "subscription", "show-sub-under-mg", "--name", "mg-prod")
    assert [s["name"] for s in subs] == [SUB], subs
    one = az("account", "management-group", "subscription", "show", "--name", "mg-prod", "--subscription", SUB)
    assert one["displayName"] == "Conformance"
    assert one["parent"]["id"] == "/providers/Microsoft.Management/managementGroups/mg-prod"


def test_az_rest_picks_graphs_audience_from_a_graph_url():
    client = READY["client_id"]
    graph = READY["graph_host_endpoint"]
    found = az("rest", "--method", "get", "--url", f"{graph}v1.0/servicePrincipals(appId='{client}')")
    assert found["appId"] == client


def test_bad_input_gets_arms_error_codes():
    url = f"{READY['arm_endpoint']}{ID_APP.lstrip('/')}"
    az_fails("rest", "--method", "get", "--url", f"{url}?api-version=2099-01-01", contains="NoRegisteredProviderFound")
    az_fails("rest", "--method", "patch", "--url", f"{url}?api-version=2024-11-30", "--body", '{"tags": "x"}',
             contains="InvalidRequestContent")


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    failed = 0
    for name, f in tests:
        started = time.monotonic()
        try:
            f()
            print(f"ok   {name} ({time.monotonic() - started:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            if name == "test_cloud_register_and_login":
                break
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
