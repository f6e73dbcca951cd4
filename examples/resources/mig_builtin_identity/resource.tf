resource "mig_builtin_identity" "westeurope" {
  location = "westeurope"
  tags     = { owner = "platform" }
}

# Bring your own identity from a shared subscription: the policy's 1.1.0 behaviour places no
# lock on an identity outside the VMs' subscription; `lock = true` overrides that.
resource "mig_builtin_identity" "shared" {
  location             = "westeurope"
  existing_identity_id = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/vm-identity"
}
