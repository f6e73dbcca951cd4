# What Azure Policy made in two subscriptions: its identities, and for each the assignment the
# quickstart declares. `terraform query` lists them; `-generate-config-out` writes them out.
locals {
  subscriptions = [
    "00000000-0000-0000-0000-000000000001",
    "00000000-0000-0000-0000-000000000002",
  ]
}

list "mig_builtin_identity" "policy" {
  provider         = mig
  include_resource = true
  config {
    subscription_ids = local.subscriptions
  }
}

list "mig_identity_assignment" "policy" {
  provider         = mig
  include_resource = true
  config {
    subscription_ids = local.subscriptions
  }
}
