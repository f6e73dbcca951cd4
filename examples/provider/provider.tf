# Credentials as for azurerm: the ARM_* environment variables, an Azure CLI login, a managed
# identity or an OIDC token. Arguments set here win over the environment.
provider "mig" {
  subscription_id = "00000000-0000-0000-0000-000000000000"
}

# A service principal with a client secret.
provider "mig" {
  alias           = "ci"
  subscription_id = "00000000-0000-0000-0000-000000000000"
  tenant_id       = "11111111-1111-1111-1111-111111111111"
  client_id       = "22222222-2222-2222-2222-222222222222"
  client_secret   = var.client_secret
  use_cli         = false
}

# GitHub Actions: workload identity federation (OIDC).
provider "mig" {
  alias           = "github"
  subscription_id = "00000000-0000-0000-0000-000000000000"
  tenant_id       = "11111111-1111-1111-1111-111111111111"
  client_id       = "22222222-2222-2222-2222-222222222222"
  use_oidc        = true
}

variable "client_secret" {
  type      = string
  sensitive = true
}
