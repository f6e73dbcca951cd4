data "mig_client_config" "current" {}

data "mig_orphaned_role_assignments" "subscription" {
  scope           = "/subscriptions/${data.mig_client_config.current.subscription_id}"
  principal_types = ["ServicePrincipal", "User", "Group"]
  min_age         = "7d"
}

output "orphaned_role_assignments" {
  value = {
    for a in data.mig_orphaned_role_assignments.subscription.orphaned :
    a.id => "${coalesce(a.role_name, a.role_definition_id)} for deleted ${a.principal_type} ${a.principal_id}"
  }
}

# Fail the run when any orphan is found (Terraform >= 1.5).
check "no_orphans" {
  assert {
    condition     = length(data.mig_orphaned_role_assignments.subscription.ids) == 0
    error_message = "Orphaned role assignments found: ${join(", ", data.mig_orphaned_role_assignments.subscription.ids)}"
  }
}
