# Every subscription under the management group: each VM and scale set gets
# Built-In-Identity-{region} of its own subscription (the policy's naming; the identities
# must exist, made by the policy or by mig_builtin_identity), machines tagged
# mig-exclude = "true" are left alone.
resource "mig_estate_assignment" "landing_zones" {
  scope        = "/providers/Microsoft.Management/managementGroups/landing-zones"
  exclude_tags = { "mig-exclude" = "true" }
}

# One identity per region for every subscription, and one subscription's own for eastus.
resource "mig_estate_assignment" "shared_identities" {
  scope = "/providers/Microsoft.Management/managementGroups/sandbox"
  identity_ids = {
    "eastus"                                      = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/eastus"
    "westeurope"                                  = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/westeurope"
    "11111111-1111-1111-1111-111111111111/eastus" = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/own"
  }
}

output "attached_per_bucket" {
  value = { for key, bucket in mig_estate_assignment.landing_zones.buckets : key => length(bucket.assigned_ids) }
}
