# Terraform 1.12+: import by resource identity: the estate's scope. Nothing is recorded as
# ours: machines holding their identity at import time are compliant_ids, and destroy leaves
# them alone. The identity stays the one imported (or created) for the life of the object,
# even when `scope` later changes in place.
import {
  to = mig_estate_assignment.landing_zones
  identity = {
    scope = "/providers/Microsoft.Management/managementGroups/landing-zones"
  }
}

resource "mig_estate_assignment" "landing_zones" {
  scope        = "/providers/Microsoft.Management/managementGroups/landing-zones"
  exclude_tags = { "mig-exclude" = "true" }
}
