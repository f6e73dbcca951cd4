# The import ID is the estate's scope, or /subscriptions for every subscription the principal
# can see. Nothing is recorded as ours: machines holding their identity at import time are
# compliant_ids, and destroy leaves them alone.
terraform import mig_estate_assignment.landing_zones /providers/Microsoft.Management/managementGroups/landing-zones
