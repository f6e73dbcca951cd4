# The estate: what the built-in policy does when it is assigned once at a management group.
# Every subscription under the group (or, with no group given, every subscription the
# principal can see) and every region of each that holds VMs or scale sets gets its own
# Built-In-Identity-{region} in Built-In-Identity-RG, locked as the policy locks it, attached
# to that subscription-and-region's machines by the policy's rules. One configuration, no
# hand-written loop over subscriptions and regions: the identities are one `for_each` over
# what `mig_subscriptions` found, the assignment is one `mig_estate_assignment`.
#
# Credentials come from the environment (ARM_* as for azurerm). See docs/guides/estates.md
# for the limits of one state holding a whole estate.

terraform {
  required_version = ">= 1.5"
  required_providers {
    mig = {
      source  = "azure-mig/mig"
      version = "~> 0.1"
    }
  }
}

provider "mig" {}

variable "management_group_id" {
  description = "The management group whose subscriptions are covered (its name or ID; the tenant ID for the tenant root group). Default: every subscription the principal can see."
  type        = string
  default     = null
}

variable "exclude_tags" {
  description = "Machines carrying any of these tags are left alone."
  type        = map(string)
  default     = { "mig-exclude" = "true" }
}

data "mig_subscriptions" "estate" {
  management_group_id = var.management_group_id
}

locals {
  states = { for s in data.mig_subscriptions.estate.subscriptions : s.subscription_id => s.state }
  # One entry per subscription and region that holds machines, keyed
  # "{subscription_id}/{location}"; a disabled subscription is read-only, so it is left out.
  estate = {
    for key, pair in data.mig_subscriptions.estate.subscription_locations :
    key => pair if local.states[pair.subscription_id] != "Disabled"
  }
}

resource "mig_builtin_identity" "estate" {
  for_each        = local.estate
  subscription_id = each.value.subscription_id
  location        = each.value.location
}

# One resource for the whole estate, as the policy is one assignment: every subscription's
# machines are written at once, so every subscription's ARM write budget is busy from the
# start whatever Terraform's -parallelism. Each machine gets the identity of its own
# subscription and region.
resource "mig_estate_assignment" "estate" {
  scope        = var.management_group_id == null ? null : data.mig_subscriptions.estate.id
  identity_ids = { for key, identity in mig_builtin_identity.estate : key => identity.id }
  exclude_tags = var.exclude_tags
}
