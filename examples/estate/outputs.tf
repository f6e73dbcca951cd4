output "subscriptions" {
  description = "The subscriptions covered, by ID, with their name."
  value       = { for s in data.mig_subscriptions.estate.subscriptions : s.subscription_id => s.display_name }
}

output "identities" {
  description = "The built-in identity of each subscription and region (\"{subscription_id}/{location}\")."
  value       = { for key, identity in mig_builtin_identity.estate : key => identity.id }
}

output "assigned" {
  description = "How many VMs and scale sets each subscription-and-region identity was attached to by this configuration."
  value       = { for key, bucket in mig_estate_assignment.estate.buckets : key => length(bucket.assigned_ids) }
}

output "skipped" {
  description = "Machines left alone, and why."
  value       = merge([for bucket in values(mig_estate_assignment.estate.buckets) : bucket.skipped]...)
}
