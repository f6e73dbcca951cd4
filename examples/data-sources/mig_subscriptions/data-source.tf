# Every subscription under a management group, with the regions that hold machines.
data "mig_subscriptions" "platform" {
  management_group_id = "mg-platform"
}

# One identity per subscription and region, the policy's naming, across the whole group.
resource "mig_builtin_identity" "estate" {
  for_each        = data.mig_subscriptions.platform.subscription_locations
  subscription_id = each.value.subscription_id
  location        = each.value.location
}

# Without a management group: every subscription the principal can see.
data "mig_subscriptions" "visible" {}

output "regions_by_subscription" {
  value = data.mig_subscriptions.visible.locations_by_subscription
}
