# Terraform 1.14+: `terraform query` lists every identity Azure Policy made,
# Built-In-Identity-* in Built-In-Identity-RG, in the subscriptions given (default: the
# provider's). `terraform query -generate-config-out=generated.tf` writes a resource and an
# import block for each.
list "mig_builtin_identity" "policy" {
  provider         = mig
  include_resource = true
  config {
    subscription_ids = [
      "00000000-0000-0000-0000-000000000000",
      "11111111-1111-1111-1111-111111111111",
    ]
  }
}

# Where the policy is assigned at a management group: every subscription anywhere under it,
# in one query (a subscription also named in subscription_ids is listed once).
list "mig_builtin_identity" "estate" {
  provider         = mig
  include_resource = true
  config {
    management_group_ids = ["mg-corp"]
  }
}
