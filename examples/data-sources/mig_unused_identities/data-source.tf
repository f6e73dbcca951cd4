data "mig_client_config" "current" {}

data "mig_unused_identities" "subscription" {
  scope = "/subscriptions/${data.mig_client_config.current.subscription_id}"
}

output "unused_identities" {
  value = {
    for i in data.mig_unused_identities.subscription.identities : i.id => i.location
  }
}
