# Terraform 1.12+: import by resource identity instead of an ID. The identity names the
# managed identity as azurerm's user-assigned identity does; `subscription_id` defaults to the
# provider's. The identity Azure Policy created, with its lock, is adopted (destroy never
# deletes it) with no changes in the next plan.
import {
  to = mig_builtin_identity.westeurope
  identity = {
    subscription_id     = "00000000-0000-0000-0000-000000000000"
    resource_group_name = "Built-In-Identity-RG"
    name                = "Built-In-Identity-westeurope"
  }
}

resource "mig_builtin_identity" "westeurope" {
  location = "westeurope"
}
