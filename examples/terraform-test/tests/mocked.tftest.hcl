# `terraform test` without Azure: the provider is mocked (no configure, no API calls), but
# Terraform still asks the real provider to validate each resource and to evaluate each
# function, so bad input and wrong IDs are caught here as they would be in a real plan.

mock_provider "mig" {
  mock_resource "mig_identity_assignment" {
    defaults = {
      assigned_ids     = ["/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/apps/providers/Microsoft.Compute/virtualMachines/vm-1"]
      compliant_ids    = []
      noncompliant_ids = []
      skipped          = {}
    }
  }
}

variables {
  subscription_id = "00000000-0000-0000-0000-000000000001"
  locations       = ["westeurope", "East US"]
}

# What the policy's identities are (the file-level default for every run below).
override_resource {
  target = mig_builtin_identity.region["westeurope"]
  values = {
    id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westeurope"
  }
}

override_resource {
  target = mig_builtin_identity.region["East US"]
  values = {
    id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus"
  }
}

run "functions_name_the_policy_identities" {
  command = plan

  assert {
    condition     = output.expected_identity_ids["East US"] == "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus"
    error_message = "builtin_identity_id normalises the region: ${output.expected_identity_ids["East US"]}"
  }

  assert {
    condition     = output.identity_names["westeurope"] == "Built-In-Identity-westeurope"
    error_message = "builtin_identity_name: ${output.identity_names["westeurope"]}"
  }

  assert {
    condition     = output.scope.subscription_id == var.subscription_id && output.scope.resource_group_name == null
    error_message = "parse_resource_id of a subscription: ${jsonencode(output.scope)}"
  }
}

run "each_region_gets_its_own_identity" {
  assert {
    condition     = mig_identity_assignment.region["westeurope"].identity_id == output.expected_identity_ids["westeurope"]
    error_message = "westeurope's machines get westeurope's identity"
  }

  assert {
    condition     = mig_identity_assignment.region["East US"].locations == toset(["East US"])
    error_message = "each assignment is limited to its region"
  }

  assert {
    condition     = mig_identity_assignment.region["westeurope"].scope == "/subscriptions/${var.subscription_id}"
    error_message = "the scope defaults to the subscription"
  }

  assert {
    condition     = output.assigned == { "westeurope" = 1, "East US" = 1 }
    error_message = "assigned: ${jsonencode(output.assigned)}"
  }
}

run "a_narrower_scope" {
  variables {
    scope = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/apps"
  }

  assert {
    condition     = output.scope.resource_group_name == "apps"
    error_message = "parse_resource_id of a resource group: ${jsonencode(output.scope)}"
  }

  assert {
    condition     = alltrue([for a in mig_identity_assignment.region : a.scope == var.scope])
    error_message = "every assignment uses the scope given"
  }
}

run "an_identity_that_is_not_the_policys_is_refused" {
  # A region of its own: resources already in this file's state keep their values.
  variables {
    locations = ["northeurope"]
  }

  override_resource {
    target = mig_builtin_identity.region["northeurope"]
    values = {
      id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/shared/providers/Microsoft.ManagedIdentity/userAssignedIdentities/someone-else"
    }
  }

  expect_failures = [mig_builtin_identity.region]
}
