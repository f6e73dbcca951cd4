data "mig_client_config" "current" {}

data "mig_permissions" "subscription" {
  scope = "/subscriptions/${data.mig_client_config.current.subscription_id}"
}

check "permissions" {
  assert {
    condition     = data.mig_permissions.subscription.sufficient
    error_message = "Missing permissions: ${jsonencode(data.mig_permissions.subscription.missing_by_resource)}"
  }
}

# Check chosen actions only.
data "mig_permissions" "cleanup" {
  scope = "/subscriptions/${data.mig_client_config.current.subscription_id}"
  actions = [
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleAssignments/delete",
  ]
}
