// The emulator driven by the newest official Azure SDKs for JavaScript, unchanged, on
// Node.js 22 (scripts/conformance-js starts the emulator once and runs this file).
// Each resource type: create, read, update, list, lock, delete (management groups, read-only
// as served: list, get, descendants, subscriptions); the identity merge and null-removal
// semantics; bad input answered with ARM's own error codes.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const crypto = require("node:crypto");
const { test } = require("node:test");

const { ClientSecretCredential } = require("@azure/identity");
const { ResourceManagementClient } = require("@azure/arm-resources");
const { ManagedServiceIdentityClient } = require("@azure/arm-msi");
const { ComputeManagementClient } = require("@azure/arm-compute");
const { AuthorizationManagementClient } = require("@azure/arm-authorization");
const { ManagementLockClient } = require("@azure/arm-locks");
const { ManagementGroupsAPI } = require("@azure/arm-managementgroups");
const { createHttpHeaders, createPipelineRequest } = require("@azure/core-rest-pipeline");

const ready = JSON.parse(fs.readFileSync(process.env.EMULATOR_READY_FILE, "utf8"));
const SUB = ready.subscription_ids[0];
const ARM = ready.arm_endpoint.replace(/\/$/, "");
const ARM_SCOPE = "https://management.azure.com/.default";
const RG = `/subscriptions/${SUB}/resourceGroups/rg-app`;
const ID_APP = `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app`;

const credential = new ClientSecretCredential(ready.tenant_id, ready.client_id, ready.client_secret, {
  authorityHost: ready.authority_host,
  // Otherwise MSAL asks login.microsoftonline.com to validate the authority.
  disableInstanceDiscovery: true,
});
// Modular (TypeSpec) clients take `endpoint` and `credentials.scopes`; the classic ones
// `endpoint` and `credentialScopes`.
const modular = { endpoint: ARM, credentials: { scopes: [ARM_SCOPE] } };
const classic = { endpoint: ARM, credentialScopes: [ARM_SCOPE] };
const resources = new ResourceManagementClient(credential, SUB, modular);
const compute = new ComputeManagementClient(credential, SUB, { ...modular, updateIntervalInMs: 200 });
const msi = new ManagedServiceIdentityClient(credential, SUB, classic);
const locks = new ManagementLockClient(credential, SUB, classic);
const authorization = new AuthorizationManagementClient(credential, SUB, classic);
// A tenant-level client: no subscription ID.
const groups = new ManagementGroupsAPI(credential, classic);

const unique = (prefix) => `${prefix}-${crypto.randomBytes(4).toString("hex")}`;
const collect = async (iterable) => {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
};
const lower = (s) => s.toLowerCase();

async function rejects(promise, status, code) {
  const error = await promise.then(
    () => assert.fail(`expected ${status} ${code}`),
    (e) => e,
  );
  assert.equal(error.statusCode, status, `${error.message}`);
  if (code) assert.equal(error.code, code, error.message);
  return error;
}

async function admin(method, path) {
  const response = await fetch(`${ARM}/_emulator/${path}`, { method });
  return response.headers.get("content-type")?.includes("json") ? response.json() : null;
}

// A raw call through the SDK's own authenticated pipeline (for bodies no typed method sends).
async function raw(method, path, body) {
  const request = createPipelineRequest({
    url: `${ARM}${path}`,
    method,
    headers: createHttpHeaders({ "content-type": "application/json" }),
    body,
  });
  const response = await msi.sendRequest(request);
  return { status: response.status, body: response.bodyAsText ? JSON.parse(response.bodyAsText) : null };
}

test("resource groups: create, read, update, list, lock, delete", async () => {
  const name = unique("rg-js");
  const created = await resources.resourceGroups.createOrUpdate(name, { location: "westeurope", tags: { k: "v" } });
  assert.equal(created.name, name);
  assert.equal(created.location, "westeurope");
  assert.equal(created.properties.provisioningState, "Succeeded");
  assert.deepEqual((await resources.resourceGroups.get(name)).tags, { k: "v" });
  const updated = await resources.resourceGroups.update(name, { tags: { k: "w" } });
  assert.deepEqual(updated.tags, { k: "w" });
  assert.ok((await collect(resources.resourceGroups.list())).some((g) => g.name === name));

  await locks.managementLocks.createOrUpdateAtResourceGroupLevel(name, "keep", { level: "CanNotDelete", notes: "js" });
  await rejects(resources.resourceGroups.delete(name), 409, "ScopeLocked");
  await locks.managementLocks.deleteAtResourceGroupLevel(name, "keep");

  await resources.resourceGroups.delete(name, { updateIntervalInMs: 200 });
  await rejects(resources.resourceGroups.get(name), 404, "ResourceGroupNotFound");
});

test("generic resources list with $expand", async () => {
  const items = await collect(
    resources.resources.listByResourceGroup("rg-app", { expand: "createdTime,changedTime,provisioningState" }),
  );
  const vm = items.find((r) => r.name === "vm-0");
  assert.equal(vm.type, "Microsoft.Compute/virtualMachines");
  assert.ok(vm.createdTime instanceof Date && !isNaN(vm.createdTime), `createdTime ${vm.createdTime}`);
  assert.ok(vm.changedTime instanceof Date);
  assert.equal(vm.provisioningState, "Succeeded");
});

test("user-assigned identities: create, read, update, list, lock, delete", async () => {
  const name = unique("id-js");
  const identity = await msi.userAssignedIdentities.createOrUpdate("rg-app", name, { location: "eastus" });
  assert.equal(identity.type, "Microsoft.ManagedIdentity/userAssignedIdentities");
  for (const v of [identity.principalId, identity.clientId, identity.tenantId]) assert.match(v, /^[0-9a-f-]{36}$/);
  const fetched = await msi.userAssignedIdentities.get("rg-app", name);
  assert.equal(fetched.principalId, identity.principalId);
  const updated = await msi.userAssignedIdentities.update("rg-app", name, { tags: { owner: "js" } });
  assert.deepEqual(updated.tags, { owner: "js" });
  const inGroup = (await collect(msi.userAssignedIdentities.listByResourceGroup("rg-app"))).map((i) => i.name);
  const inSub = (await collect(msi.userAssignedIdentities.listBySubscription())).map((i) => i.name);
  assert.ok(inGroup.includes(name) && inGroup.includes("id-app"));
  assert.ok(inSub.includes(name));

  const lock = await locks.managementLocks.createOrUpdateByScope(identity.id, "keep", { level: "CanNotDelete", notes: "js" });
  assert.equal(lock.level, "CanNotDelete");
  assert.deepEqual((await collect(locks.managementLocks.listByScope(identity.id))).map((l) => l.name), ["keep"]);
  assert.equal((await locks.managementLocks.getByScope(identity.id, "keep")).notes, "js");
  await rejects(msi.userAssignedIdentities.delete("rg-app", name), 409, "ScopeLocked");
  await locks.managementLocks.deleteByScope(identity.id, "keep");
  await msi.userAssignedIdentities.delete("rg-app", name);
  await rejects(msi.userAssignedIdentities.get("rg-app", name), 404);
});

test("virtual machines: create, read, update identity (merge, null removal), list, lock, delete", async () => {
  const second = await msi.userAssignedIdentities.createOrUpdate("rg-app", unique("id-js"), { location: "eastus" });
  const name = unique("vm-js");
  const created = await compute.virtualMachines.createOrUpdate("rg-app", name, {
    location: "eastus",
    tags: { env: "js" },
    hardwareProfile: { vmSize: "Standard_B1s" },
    identity: { type: "UserAssigned", userAssignedIdentities: { [ID_APP]: {} } },
  });
  assert.equal(created.provisioningState, "Succeeded");
  assert.equal(created.hardwareProfile.vmSize, "Standard_B1s");
  const vm = await compute.virtualMachines.get("rg-app", name);
  assert.ok(vm.etag, "Compute 2023-09-01 and later return an etag");
  assert.deepEqual(Object.keys(vm.identity.userAssignedIdentities).map(lower), [lower(ID_APP)]);

  // userAssignedIdentities merges into what the VM has...
  let updated = await compute.virtualMachines.update("rg-app", name, {
    identity: { type: "SystemAssigned, UserAssigned", userAssignedIdentities: { [second.id]: {} } },
  });
  assert.equal(updated.identity.type, "SystemAssigned, UserAssigned");
  assert.ok(updated.identity.principalId);
  assert.deepEqual(Object.keys(updated.identity.userAssignedIdentities).map(lower).sort(), [lower(ID_APP), lower(second.id)].sort());
  const value = updated.identity.userAssignedIdentities[Object.keys(updated.identity.userAssignedIdentities).find((k) => lower(k) === lower(second.id))];
  assert.equal(value.principalId, second.principalId);
  assert.equal(value.clientId, second.clientId);
  // ...and a key set to null removes that identity.
  updated = await compute.virtualMachines.update("rg-app", name, {
    identity: { type: "SystemAssigned, UserAssigned", userAssignedIdentities: { [second.id]: null } },
  });
  assert.deepEqual(Object.keys(updated.identity.userAssignedIdentities).map(lower), [lower(ID_APP)]);

  // If-Match with a stale etag: 412.
  const before = await compute.virtualMachines.get("rg-app", name);
  await compute.virtualMachines.update("rg-app", name, { tags: { a: "1" } });
  await rejects(compute.virtualMachines.update("rg-app", name, { tags: { a: "2" } }, { ifMatch: before.etag }), 412);
  const current = await compute.virtualMachines.get("rg-app", name);
  assert.deepEqual(current.tags, { a: "1" });

  // Invalid transition: Compute's InvalidParameter.
  await rejects(
    compute.virtualMachines.update("rg-app", name, { identity: { type: "SystemAssigned", userAssignedIdentities: { [ID_APP]: {} } } }),
    400,
    "InvalidParameter",
  );

  await admin("DELETE", "requests");
  const all = (await collect(compute.virtualMachines.listAll())).map((v) => v.name);
  assert.ok(all.includes(name) && all.includes("vm-one-uami") && all.length === new Set(all).size);
  const pages = (await admin("GET", "requests")).filter((r) => r.path.endsWith("/virtualMachines"));
  assert.ok(pages.length >= 3, "page_size 3: the SDK followed nextLink");
  assert.ok((await collect(compute.virtualMachines.list("rg-app"))).some((v) => v.name === name));

  await locks.managementLocks.createOrUpdateByScope(current.id, "ro", { level: "ReadOnly" });
  await rejects(compute.virtualMachines.update("rg-app", name, { tags: { b: "1" } }), 409, "ScopeLocked");
  await rejects(compute.virtualMachines.delete("rg-app", name), 409, "ScopeLocked");
  await locks.managementLocks.deleteByScope(current.id, "ro");

  await compute.virtualMachines.delete("rg-app", name, { updateIntervalInMs: 200 });
  await rejects(compute.virtualMachines.get("rg-app", name), 404, "ResourceNotFound");
});

test("scale sets: create, read, update identity (merge, null removal), list, lock, delete", async () => {
  const second = await msi.userAssignedIdentities.createOrUpdate("rg-app", unique("id-js"), { location: "eastus" });
  let ss = await compute.virtualMachineScaleSets.update("rg-app", "ss-1", {
    identity: { type: "UserAssigned", userAssignedIdentities: { [ID_APP]: {} } },
  });
  assert.equal(ss.identity.type, "UserAssigned");
  ss = await compute.virtualMachineScaleSets.update("rg-app", "ss-1", {
    identity: { type: "UserAssigned", userAssignedIdentities: { [second.id]: {} } },
  });
  assert.deepEqual(Object.keys(ss.identity.userAssignedIdentities).map(lower).sort(), [lower(ID_APP), lower(second.id)].sort());
  ss = await compute.virtualMachineScaleSets.update("rg-app", "ss-1", {
    identity: { type: "UserAssigned", userAssignedIdentities: { [ID_APP]: null } },
  });
  const fetched = await compute.virtualMachineScaleSets.get("rg-app", "ss-1");
  assert.deepEqual(Object.keys(fetched.identity.userAssignedIdentities).map(lower), [lower(second.id)]);
  assert.ok((await collect(compute.virtualMachineScaleSets.listAll())).some((s) => s.name === "ss-1"));
  assert.ok((await collect(compute.virtualMachineScaleSets.list("rg-app"))).some((s) => s.name === "ss-1"));
  await locks.managementLocks.createOrUpdateByScope(fetched.id, "ro", { level: "ReadOnly" });
  await rejects(compute.virtualMachineScaleSets.update("rg-app", "ss-1", { tags: { b: "1" } }), 409, "ScopeLocked");
  await locks.managementLocks.deleteByScope(fetched.id, "ro");

  const name = unique("ss-js");
  const created = await compute.virtualMachineScaleSets.createOrUpdate("rg-app", name, {
    location: "eastus",
    tags: { env: "js" },
    sku: { name: "Standard_B1s", capacity: 2 },
  });
  assert.equal(created.provisioningState, "Succeeded");
  assert.deepEqual((await compute.virtualMachineScaleSets.get("rg-app", name)).tags, { env: "js" });
  await locks.managementLocks.createOrUpdateByScope(created.id, "keep", { level: "CanNotDelete" });
  await rejects(compute.virtualMachineScaleSets.delete("rg-app", name), 409, "ScopeLocked");
  await locks.managementLocks.deleteByScope(created.id, "keep");
  await compute.virtualMachineScaleSets.delete("rg-app", name, { updateIntervalInMs: 200 });
  await rejects(compute.virtualMachineScaleSets.get("rg-app", name), 404, "ResourceNotFound");
});

test("role assignments and definitions: create, read, list, delete", async () => {
  const identity = await msi.userAssignedIdentities.createOrUpdate("rg-app", unique("id-js"), { location: "eastus" });
  const [reader] = await collect(authorization.roleDefinitions.list(RG, { filter: "roleName eq 'Reader'" }));
  assert.equal(reader.roleName, "Reader");
  assert.equal((await authorization.roleDefinitions.getById(reader.id)).roleName, "Reader");
  const name = crypto.randomUUID();
  const created = await authorization.roleAssignments.create(RG, name, {
    roleDefinitionId: reader.id,
    principalId: identity.principalId,
    principalType: "ServicePrincipal",
  });
  assert.equal(lower(created.scope), lower(RG));
  assert.equal((await authorization.roleAssignments.get(RG, name)).principalId, identity.principalId);
  const listed = await collect(authorization.roleAssignments.listForScope(RG, { filter: `principalId eq '${identity.principalId}'` }));
  assert.deepEqual(listed.map((a) => a.name), [name]);
  await rejects(
    authorization.roleAssignments.create(RG, crypto.randomUUID(), { roleDefinitionId: reader.id, principalId: identity.principalId }),
    409,
    "RoleAssignmentExists",
  );
  await authorization.roleAssignments.delete(RG, name);
  await rejects(authorization.roleAssignments.get(RG, name), 404);
});

test("management groups: list, get with recursive children, descendants, subscriptions", async () => {
  const MG = "/providers/Microsoft.Management/managementGroups";
  const listed = await collect(groups.managementGroups.list());
  assert.deepEqual(listed.map((g) => g.name).sort(), [ready.tenant_id, "mg-platform", "mg-prod"].sort());
  assert.equal(listed.find((g) => g.name === "mg-prod").displayName, "Production");

  const root = await groups.managementGroups.get(ready.tenant_id, { expand: "children", recurse: true });
  assert.equal(root.displayName, "Tenant Root Group");
  const [platform] = root.children;
  assert.equal(platform.name, "mg-platform");
  assert.equal(platform.type, "Microsoft.Management/managementGroups");
  const [prod] = platform.children;
  assert.equal(prod.name, "mg-prod");
  assert.deepEqual(prod.children.map((c) => [c.type, c.name, c.displayName]), [["/subscriptions", SUB, "Conformance"]]);
  const shown = await groups.managementGroups.get("mg-prod", { expand: "path" });
  assert.equal(shown.details.parent.name, "mg-platform");
  assert.deepEqual(shown.details.path.map((p) => p.name), [ready.tenant_id, "mg-platform", "mg-prod"]);
  assert.ok(shown.details.updatedTime instanceof Date);

  await admin("DELETE", "requests");
  const below = await collect(groups.managementGroups.listDescendants(ready.tenant_id, { top: 1 }));
  assert.deepEqual(below.map((d) => d.name), ["mg-platform", "mg-prod", SUB]);
  assert.equal(below[2].type, "Microsoft.Management/managementGroups/subscriptions");
  assert.equal(below[2].parent.id, `${MG}/mg-prod`);
  const pages = (await admin("GET", "requests")).filter((r) => r.path.endsWith("/descendants"));
  assert.equal(pages.length, 3, "top 1: the SDK followed nextLink");

  const subs = await collect(groups.managementGroupSubscriptions.listSubscriptionsUnderManagementGroup("mg-prod"));
  assert.deepEqual(subs.map((s) => s.name), [SUB]);
  const one = await groups.managementGroupSubscriptions.getSubscription("mg-prod", SUB);
  assert.equal(one.displayName, "Conformance");
  assert.equal(one.parent.id, `${MG}/mg-prod`);
  await rejects(groups.managementGroups.get("mg-nope"), 403, "AuthorizationFailed");
});

test("bad input gets ARM's error codes", async () => {
  const old = new ManagedServiceIdentityClient(credential, SUB, { ...classic, apiVersion: "2099-01-01" });
  const error = await rejects(old.userAssignedIdentities.get("rg-app", "id-app"), 400, "NoRegisteredProviderFound");
  assert.match(error.message, /API version '2099-01-01'/);
  const path = `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app?api-version=2024-11-30`;
  const malformed = await raw("PATCH", path, "{not json");
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.error.code, "InvalidRequestContent");
  const wrongShape = await raw("PATCH", path, JSON.stringify({ tags: "not-a-map" }));
  assert.equal(wrongShape.status, 400);
  assert.equal(wrongShape.body.error.code, "InvalidRequestContent");
  assert.match(wrongShape.body.error.message, /^The request content was invalid and could not be deserialized: 'Error converting value "not-a-map" to type .*Path 'tags'/);
});
