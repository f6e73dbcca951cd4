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
