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

variable "unreadable_locations" {
  description = "Subscription ID -> the regions it holds machines in, used only while mig_subscriptions cannot list its machines (it warns, naming the subscription and why) or does not list the subscription at all (no role left on it, without a management group): its identities, and the estate's buckets of it, are then kept as they are instead of planned for destroy. The `identities` output lists each subscription's regions."
  type        = map(set(string))
  default     = {}
}

data "mig_subscriptions" "estate" {
  management_group_id = var.management_group_id
}

locals {
  states     = { for s in data.mig_subscriptions.estate.subscriptions : s.subscription_id => s.state }
  unreadable = data.mig_subscriptions.estate.unreadable_subscription_ids
  readable   = toset([for s in data.mig_subscriptions.estate.subscriptions : s.subscription_id if s.readable])
  # Unreadable subscriptions that `unreadable_locations` does not cover: their regions are
  # unknown, so the plan stops rather than destroy their identities.
  uncovered = setsubtract(local.unreadable, [for id in keys(var.unreadable_locations) : lower(id)])
  # Subscriptions in which ARM refuses writes: their identities are kept, none is created.
  read_only = {
    for key, pair in data.mig_subscriptions.estate.subscription_locations :
    key => pair if contains(["Disabled", "Deleted"], coalesce(local.states[pair.subscription_id], "Enabled"))
  }
  # One entry per subscription and region that holds machines, keyed
  # "{subscription_id}/{location}". A read-only (disabled) subscription keeps the identities
  # it has and gets no new one; a subscription whose machines cannot be listed keeps the
  # regions given for it, and so does one the principal no longer sees at all (without a
  # management group, `GET /subscriptions` leaves out a subscription it has no role on).
  estate = merge(
    {
      for key, pair in data.mig_subscriptions.estate.subscription_locations :
      key => pair if !contains(keys(local.read_only), key)
    },
    {
      for key, pair in local.read_only : key => pair if data.mig_builtin_identity.read_only[key].exists
    },
    {
      for pair in flatten([
        for id, locations in var.unreadable_locations : [
          for location in locations : { subscription_id = lower(id), location = location }
        ] if !contains(local.readable, lower(id))
      ]) : "${pair.subscription_id}/${pair.location}" => pair
    },
  )
}

# The identities a read-only subscription already has (reads still answer there).
data "mig_builtin_identity" "read_only" {
  for_each        = local.read_only
  subscription_id = each.value.subscription_id
  location        = each.value.location
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

  lifecycle {
    precondition {
      condition     = length(local.uncovered) == 0
      error_message = "The machines of ${join(", ", local.uncovered)} cannot be listed now (mig_subscriptions warns why), so their regions are unknown and their identities would be destroyed. Set variable unreadable_locations to the regions of each, e.g. { \"<subscription_id>\" = [\"eastus\"] } (the `identities` output lists them), to keep them as they are until it can be read again."
    }
  }
}
