data "mig_client_config" "current" {}

# Remove orphaned service principal (managed identity) assignments in the subscription.
resource "mig_orphan_cleanup" "subscription" {
  scope         = "/subscriptions/${data.mig_client_config.current.subscription_id}"
  min_age       = "48h"
  max_deletions = 20

  # Never touch Owner assignments, orphaned or not.
  exclude_role_definition_ids = ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"]
}

# Only list what a clean-up would remove, for users and groups as well.
resource "mig_orphan_cleanup" "audit" {
  scope           = "/subscriptions/${data.mig_client_config.current.subscription_id}/resourceGroups/rg-app"
  mode            = "report"
  principal_types = ["ServicePrincipal", "User", "Group"]
}

output "orphans_found" {
  value = mig_orphan_cleanup.audit.orphaned[*].id
}
