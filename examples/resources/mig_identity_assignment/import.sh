# An assignment is imported by "{scope}|{identity_id}". Machines that hold the identity at
# import time are recorded as compliant_ids: destroy leaves them alone.
terraform import mig_identity_assignment.eastus '/subscriptions/00000000-0000-0000-0000-000000000000|/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus'
