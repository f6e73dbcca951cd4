"""ARM throttling and transient faults as the SDKs' retry policy sees them."""


from conftest import arm_client
from sdk import ResourceManagementClient


def test_sdk_retries_a_429_with_retry_after_and_succeeds(emulator, credential, admin):
    admin.post(
        "faults",
        {"kind": "status", "status": 429, "retry_after": 1, "count": 2, "method": "GET", "path_contains": "resourcegroups/rg-app"},
    )
    admin.delete("requests")
    client = arm_client(ResourceManagementClient, emulator, credential)
    group = client.resource_groups.get("rg-app")
    assert group.name == "rg-app"
    statuses = [r["status"] for r in admin.get("requests") if r["path"].lower().endswith("/resourcegroups/rg-app")]
    assert statuses == [429, 429, 200]


def test_every_arm_response_reports_the_remaining_budget(emulator, credential):
    client = arm_client(ResourceManagementClient, emulator, credential)
    seen = {}

    def capture(response):
        seen.update(response.http_response.headers)

    client.resource_groups.get("rg-app", raw_response_hook=capture)
    assert int(seen["x-ms-ratelimit-remaining-subscription-reads"]) >= 0
    assert seen["x-ms-request-id"]
