data "mig_client_config" "current" {}

data "mig_virtual_machines" "all" {
  scope = "/subscriptions/${data.mig_client_config.current.subscription_id}"
}

# One built-in identity per region that has VMs or scale sets.
resource "mig_builtin_identity" "region" {
  for_each = data.mig_virtual_machines.all.locations
  location = each.key
}

# Only the VMs of one resource group.
data "mig_virtual_machines" "app" {
  scope          = "/subscriptions/${data.mig_client_config.current.subscription_id}/resourceGroups/rg-app"
  resource_types = ["virtualMachines"]
}

output "vms_without_identity" {
  value = [for m in data.mig_virtual_machines.app.machines : m.name if m.identity_type == "None"]
}
