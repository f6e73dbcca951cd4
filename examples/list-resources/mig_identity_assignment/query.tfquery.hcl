# Terraform 1.14+: for each identity Azure Policy made, the assignment the quickstart
# declares: the identity over its subscription, in its region, machines tagged
# mig-exclude = "true" left alone.
list "mig_identity_assignment" "policy" {
  provider         = mig
  include_resource = true
  config {
    subscription_ids = ["00000000-0000-0000-0000-000000000000"]
    locations        = ["eastus", "westeurope"]
  }
}

# Every subscription under a management group (by name or ID), and one outside it.
list "mig_identity_assignment" "estate" {
  provider         = mig
  include_resource = true
  config {
    management_group_ids = ["/providers/Microsoft.Management/managementGroups/mg-corp"]
    subscription_ids     = ["11111111-1111-1111-1111-111111111111"]
  }
}
