# The provider block only: `terraform query -generate-config-out=generated.tf` writes the
# resources and their import blocks next to it.
terraform {
  required_version = ">= 1.14"
  required_providers {
    mig = { source = "azure-mig/mig", version = "~> 0.1" }
  }
}

provider "mig" {} # credentials as for azurerm: ARM_* variables, CLI login, MSI or OIDC
