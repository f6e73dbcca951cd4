data "mig_client_config" "current" {}

locals {
  subscription_scope = "/subscriptions/${data.mig_client_config.current.subscription_id}"
}

output "signed_in_as" {
  value = data.mig_client_config.current.object_id
}
