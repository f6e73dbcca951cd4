# A small module, the way a module author would wrap this provider: one built-in identity
# per region, attached to that region's VMs and scale sets in a scope. Its tests
# (tests/*.tftest.hcl) run with `terraform test` and `mock_provider "mig"`: no Azure, no
# credentials. The provider still validates every resource and evaluates every function.

terraform {
  required_version = ">= 1.8"
  required_providers {
    mig = {
      source  = "azure-mig/mig"
      version = "~> 0.1"
    }
  }
}

variable "subscription_id" {
  description = "The subscription whose machines get their region's identity."
  type        = string
}

variable "locations" {
  description = "The regions to cover (`westeurope` or `West Europe`)."
  type        = set(string)
}

variable "scope" {
  description = "Where to attach the identities; the whole subscription when null."
  type        = string
  default     = null
}

variable "exclude_tags" {
  description = "Machines with any of these tags are left alone."
  type        = map(string)
  default     = { "mig-exclude" = "true" }
}

locals {
  scope = coalesce(var.scope, "/subscriptions/${var.subscription_id}")

  # The identity each region must end up with, as the built-in policy names it.
  expected_ids = {
    for location in var.locations :
    location => provider::mig::builtin_identity_id(var.subscription_id, location)
  }
}

resource "mig_builtin_identity" "region" {
  for_each        = var.locations
  subscription_id = var.subscription_id
  location        = each.key

  lifecycle {
    postcondition {
      condition     = lower(self.id) == lower(local.expected_ids[each.key])
      error_message = "The identity of ${each.key} is not the built-in policy's: ${self.id}."
    }
  }
}

resource "mig_identity_assignment" "region" {
  for_each     = mig_builtin_identity.region
  identity_id  = each.value.id
  scope        = local.scope
  locations    = [each.key]
  exclude_tags = var.exclude_tags
}

output "expected_identity_ids" {
  description = "The built-in policy's identity for each region, computed by the provider's function."
  value       = local.expected_ids
}

output "identity_names" {
  value = { for location in var.locations : location => provider::mig::builtin_identity_name(location) }
}

output "scope" {
  description = "The scope, split into its parts."
  value       = provider::mig::parse_resource_id(local.scope)
}

output "identity_ids" {
  value = { for location, identity in mig_builtin_identity.region : location => identity.id }
}

output "assigned" {
  description = "How many machines each region's identity was attached to."
  value       = { for location, a in mig_identity_assignment.region : location => length(a.assigned_ids) }
}
