# A clean-up is imported by its scope. An import removes nothing.
terraform import mig_orphan_cleanup.subscription /subscriptions/00000000-0000-0000-0000-000000000000
