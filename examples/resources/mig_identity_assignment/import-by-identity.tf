# Terraform 1.12+: import by resource identity: the scope and identity the assignment covers.
# Machines holding the identity at import time are compliant_ids: destroy leaves them alone.
# The identity stays the one imported (or created) for the life of the object, even when
# `scope` or `identity_id` later change in place.
import {
  to = mig_identity_assignment.eastus
  identity = {
    scope       = "/subscriptions/00000000-0000-0000-0000-000000000000"
    identity_id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus"
  }
}

resource "mig_identity_assignment" "eastus" {
  scope        = "/subscriptions/00000000-0000-0000-0000-000000000000"
  identity_id  = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus"
  locations    = ["eastus"]
  exclude_tags = { "mig-exclude" = "true" }
}
