locals {
  regions = toset(["eastus", "westeurope"])
}

data "mig_builtin_identity" "existing" {
  for_each = local.regions
  location = each.key
}

# Adopt the identities the policy already created; create the others.
import {
  for_each = { for region, found in data.mig_builtin_identity.existing : region => found.id if found.exists }
  to       = mig_builtin_identity.region[each.key]
  id       = each.value
}

resource "mig_builtin_identity" "region" {
  for_each = local.regions
  location = each.key
}

output "locked" {
  value = { for region, found in data.mig_builtin_identity.existing : region => found.locked }
}
