# An identity is imported by its resource ID. The identity Azure Policy created, with its
# lock, is adopted with no changes in the next plan.
terraform import mig_builtin_identity.westeurope /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westeurope
