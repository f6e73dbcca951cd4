output "identities" {
  description = "The built-in identity of each region."
  value       = { for region, identity in mig_builtin_identity.region : region => identity.id }
}

output "assigned" {
  description = "How many VMs and scale sets each region's identity was attached to by this configuration."
  value       = { for region, a in mig_identity_assignment.region : region => length(a.assigned_ids) }
}

output "already_compliant" {
  description = "Machines that already had their region's identity from someone else."
  value       = { for region, a in mig_identity_assignment.region : region => length(a.compliant_ids) }
}

output "skipped" {
  description = "Machines left alone, and why."
  value       = merge([for a in mig_identity_assignment.region : a.skipped]...)
}

output "orphaned_role_assignments" {
  description = "Role assignments whose principal no longer exists (report mode: nothing removed)."
  value       = [for o in mig_orphan_cleanup.subscription.orphaned : "${o.role_name} for ${o.principal_id} at ${o.scope}"]
}
