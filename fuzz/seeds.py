#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ (committed): values of every schema in
fuzz/schemas/mig.json as Terraform sends them (msgpack, with unknowns in plans) and stores
them (JSON state), real ARM IDs, durations and ARM request bodies. Run from fuzz/ after a
schema change; libFuzzer finds the rest."""
import hashlib, json, os, struct

SUB = "00000000-0000-0000-0000-000000000001"
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-app"
UAMI = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm-system"
BUILTIN = f"/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus"
GUID = "9f1e0000-0000-4000-8000-00000000dead"
READER = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
STRINGS = {
    "scope": f"/subscriptions/{SUB}", "identity_id": BUILTIN, "existing_identity_id": UAMI,
    "id": BUILTIN, "location": "eastus", "subscription_id": SUB, "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": GUID, "principal_id": GUID, "object_id": GUID, "name": "Built-In-Identity-eastus",
    "resource_group_name": "Built-In-Identity-RG", "resource_group_location": "eastus",
    "resource_group_id": f"/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG",
    "lock_id": BUILTIN + "/providers/Microsoft.Authorization/locks/CanNotDeleteLock-Built-In-Identity-eastus",
    "min_age": "24h", "create": "30m", "read": "5m", "update": "30m", "delete": "30m", "mode": "report",
    "environment": "public", "role_definition_id": READER, "created_on": "2026-01-15T10:00:00Z",
    "principal_type": "ServicePrincipal", "role_name": "Reader", "provider_namespace": "Microsoft.Compute",
    "resource_type": "virtualMachines", "msi_endpoint": "http://169.254.169.254/metadata/identity/oauth2/token",
}
MEMBERS = {"locations": ["eastus", "westeurope"], "principal_types": ["ServicePrincipal"],
           "exclude_ids": [VM], "resource_types": ["virtualMachines", "virtualMachineScaleSets"],
           "exclude_role_definition_ids": ["acdd72a7-3385-48ef-bd42-f606fba81ae7"],
           "exclude_tags": {"mig-exclude": "true"}, "tags": {"env": "prod", "owner": "platform"}}
UNKNOWN = object()

def sample(ty, name, unknowns):
    if isinstance(ty, str):
        if ty == "string":
            if unknowns and name in ("id", "principal_id", "client_id", "lock_id"):
                return UNKNOWN
            return STRINGS.get(name, f"{name}-value")
        if ty == "number":
            return 10 if name != "ratio" else 0.5
        if ty == "bool":
            return True
        return {"dynamic": ["string", "x"]}
    kind, arg = ty[0], ty[1]
    if kind == "object":
        return {k: sample(t, k, unknowns) for k, t in arg.items()}
    if kind in ("list", "set"):
        if name in MEMBERS and arg == "string":
            return MEMBERS[name]
        if unknowns and name.endswith("_ids"):
            return UNKNOWN
        return [sample(arg, name, unknowns)]
    if kind == "map":
        if name in MEMBERS and arg == "string":
            return MEMBERS[name]
        return {"a": sample(arg, name, unknowns)}
    raise ValueError(ty)

def mp(value, ty):
    out = bytearray()
    def s(text):
        b = text.encode()
        if len(b) < 32: out.append(0xA0 | len(b))
        elif len(b) < 256: out.extend([0xD9, len(b)])
        else: out.append(0xDA); out.extend(struct.pack(">H", len(b)))
        out.extend(b)
    def n(count, fix, big):
        if count < 16: out.append(fix | count)
        else: out.append(big); out.extend(struct.pack(">H", count))
    def w(v, t):
        if v is None: out.append(0xC0)
        elif v is UNKNOWN: out.extend([0xD4, 0, 0])
        elif t == "dynamic":
            out.append(0x92); tb = json.dumps(v["dynamic"][0]).encode()
            out.extend([0xC4, len(tb)]); out.extend(tb); w(v["dynamic"][1], v["dynamic"][0])
        elif isinstance(v, bool): out.append(0xC3 if v else 0xC2)
        elif isinstance(v, int):
            if 0 <= v < 128: out.append(v)
            else: out.append(0xD3); out.extend(struct.pack(">q", v))
        elif isinstance(v, float): out.append(0xCB); out.extend(struct.pack(">d", v))
        elif isinstance(v, str): s(v)
        elif isinstance(v, list):
            n(len(v), 0x90, 0xDC)
            for item in v: w(item, t[1])
        elif isinstance(v, dict):
            n(len(v), 0x80, 0xDE)
            for k in sorted(v):
                s(k); w(v[k], t[1][k] if t[0] == "object" else t[1])
    w(value, ty)
    return bytes(out)

def state(v, t):
    if v is UNKNOWN or v is None: return None
    if t == "dynamic": return {"value": v["dynamic"][1], "type": v["dynamic"][0]}
    if isinstance(v, list): return [state(i, t[1]) for i in v]
    if isinstance(v, dict): return {k: state(x, t[1][k] if t[0] == "object" else t[1]) for k, x in v.items()}
    return v

def write(target, data):
    folder = os.path.join("corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    with open(os.path.join(folder, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)

types = json.load(open("schemas/mig.json"))
for name, ty in types.items():
    short = name.rsplit(".", 1)[-1]
    for unknowns in (False, True):
        value = sample(ty, short, unknowns)
        write("dynamic_value_msgpack", mp(value, ty))
    write("dynamic_value_msgpack", mp(None, ty))
    write("dynamic_value_json", json.dumps(state(sample(ty, short, False), ty)))
    if isinstance(ty, list) and ty[0] == "object":
        write("dynamic_value_json", json.dumps({k: None for k in ty[1]}, indent=2))
write("dynamic_value_msgpack", mp({"dynamic": [["list", "string"], ["a", "b"]]}, "dynamic"))
write("dynamic_value_msgpack", bytes([0xC7, 3, 12, 0x81, 0x01, 0xC3]))  # refined unknown
write("dynamic_value_json", json.dumps({"value": {"n": 1.5}, "type": ["object", {"n": "number"}]}))
write("dynamic_value_json", '{"scope": "/subscriptions/x", "min_age": "24h", "max_deletions": "12345678901234567890123"}')

for text in [f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/", GROUP, GROUP.lower(), UAMI, VM, BUILTIN,
             f"{GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0",
             f"/SUBSCRIPTIONS/{SUB.upper()}/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.MANAGEDIDENTITY/USERASSIGNEDIDENTITIES/X",
             READER, f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{GUID}",
             UAMI + "/providers/Microsoft.Authorization/locks/l1", "/subscriptions/not-a-guid", "subscriptions/x",
             f"/subscriptions/{SUB}//resourceGroups/rg", f"{GROUP}/providers/X", "East US", "westeurope", "eastus2euap",
             "  North Europe ", "Ünïcode", ""]:
    write("arm_id", text)

for text in ["30s", "10m", "1h30m", "24h", "7d", "0s", "2h 5min", "1y 2M 3w", "500ms", "1ns", "90 seconds",
             "18446744073709551615s", "584542046090y", "1h1h1h", "soon", "-5m", "1.5h", "3 days", "0", ""]:
    write("duration", text)

bodies = {
    0: ['{"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"%s":{}}}}' % BUILTIN,
        '{"identity":{"type":"SystemAssigned","userAssignedIdentities":{"%s":null}}}' % UAMI,
        '{"identity":{"type":"None"}}', '{"tags":{"env":"prod"}}', '{}', '[]', 'null', ''],
    1: ['{"location":"eastus","identity":{"type":"UserAssigned","userAssignedIdentities":{"%s":{}}},"properties":{"hardwareProfile":{"vmSize":"Standard_B1s"}}}' % UAMI],
    2: ['{"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"%s":{}}}}' % BUILTIN,
        '{"identity":{"type":"UserAssigned","userAssignedIdentities":{}}}'],
    3: ['{"location":"eastus","tags":{"env":"prod"}}', '{"location":"East US"}', '{"tags":{}}', '{"location":5}'],
    4: ['{"properties":{"level":"CanNotDelete","notes":"Please do not delete this User-Assigned Identity since extensions enabled by Azure Policy are relying on their existence."}}',
        '{"properties":{"level":"ReadOnly"}}', '{"properties":{"level":"Other"}}', '{"properties":null}'],
    5: ['{"properties":{"roleDefinitionId":"%s","principalId":"%s","principalType":"ServicePrincipal"}}' % (READER, GUID),
        '{"properties":{"roleDefinitionId":"%s","principalId":"not-a-guid"}}' % READER, '{"properties":{}}'],
    6: ['{"location":"eastus"}', '{"location":"eastus","tags":{"a":"b"},"managedBy":null}', '{"location":""}', '{"properties":[]}'],
}
for selector, items in bodies.items():
    for body in items:
        write("emulator_body", bytes([selector]) + body.encode())
for target in sorted(os.listdir("corpus")):
    print(target, len(os.listdir(os.path.join("corpus", target))))
