"""Where the Python SDK lines keep things, so one suite drives both the pinned 2024-2025 line
(requirements.txt) and the newest releases (requirements-latest.txt) unchanged.

Only imports and keyword names differ between the lines; what goes over the wire is the SDK's own.
"""

import inspect

try:  # azure-mgmt-resource >= 26
    from azure.mgmt.resource.resources import ResourceManagementClient
except ImportError:  # azure-mgmt-resource 23-25
    from azure.mgmt.resource import ResourceManagementClient

try:  # azure-mgmt-resource >= 26 split locks into azure-mgmt-resource-locks
    from azure.mgmt.resource.locks import ManagementLockClient
except ImportError:
    from azure.mgmt.locks import ManagementLockClient  # type: ignore[no-redef]

from azure.mgmt.compute import ComputeManagementClient

try:  # azure-mgmt-managementgroups >= 2 (TypeSpec): no subscription, `base_url`
    from azure.mgmt.managementgroups import ManagementGroupsMgmtClient as ManagementGroupsClient
except ImportError:  # azure-mgmt-managementgroups 1.x
    from azure.mgmt.managementgroups import ManagementGroupsAPI as ManagementGroupsClient  # type: ignore[no-redef]


def if_match(operation, etag):
    """The keyword arguments that make `operation` send `If-Match: etag`: `if_match=` up to
    azure-mgmt-compute 37, `etag=` + `match_condition=` from 38 on."""
    parameters = inspect.signature(operation).parameters
    if "if_match" in parameters:
        return {"if_match": etag}
    from azure.core import MatchConditions

    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def version(package):
    from importlib.metadata import version as v

    return v(package)


__all__ = [
    "ComputeManagementClient",
    "ManagementGroupsClient",
    "ManagementLockClient",
    "ResourceManagementClient",
    "if_match",
    "version",
]
