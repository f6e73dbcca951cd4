# Quickstart: the built-in policy's behaviour for a whole subscription, with a plan.
#
# - finds the regions that have VMs or scale sets,
# - creates Built-In-Identity-{region} in Built-In-Identity-RG for each, locked as the policy locks it,
# - attaches each region's identity to that region's VMs and scale sets, by the policy's rules,
# - reports role assignments left behind by deleted identities.
#
# Credentials come from the environment (ARM_* as for azurerm); `make demo` sets them for the emulator.

terraform {
  required_version = ">= 1.8"
  required_providers {
    mig = {
      source  = "azure-mig/mig"
      version = "~> 0.1"
    }
  }
}

provider "mig" {}

data "mig_client_config" "current" {}

locals {
  subscription_scope = "/subscriptions/${data.mig_client_config.current.subscription_id}"
}

data "mig_virtual_machines" "all" {
  scope = local.subscription_scope
}

# Where Azure Policy already created a region's identity, adopt it instead of failing.
data "mig_builtin_identity" "existing" {
  for_each = data.mig_virtual_machines.all.locations
  location = each.key
}

import {
  for_each = { for region, found in data.mig_builtin_identity.existing : region => found.id if found.exists }
  to       = mig_builtin_identity.region[each.key]
  id       = each.value
}

resource "mig_builtin_identity" "region" {
  for_each = data.mig_virtual_machines.all.locations
  location = each.key
}

resource "mig_identity_assignment" "region" {
  for_each     = mig_builtin_identity.region
  identity_id  = each.value.id
  scope        = local.subscription_scope
  locations    = [each.key]
  exclude_tags = { "mig-exclude" = "true" }
}

resource "mig_orphan_cleanup" "subscription" {
  scope = local.subscription_scope
  mode  = "report"
}
