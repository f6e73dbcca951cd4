resource "mig_builtin_identity" "eastus" {
  location = "eastus"
}

resource "mig_identity_assignment" "eastus" {
  identity_id  = mig_builtin_identity.eastus.id
  scope        = "/subscriptions/00000000-0000-0000-0000-000000000000"
  locations    = ["eastus"]
  exclude_tags = { "mig-exclude" = "true" }
}

output "skipped" {
  value = mig_identity_assignment.eastus.skipped
}
