action "mig_orphan_cleanup" "subscription" {
  config {
    scope         = "/subscriptions/00000000-0000-0000-0000-000000000000"
    min_age       = "72h"
    max_deletions = 20

    # Never touch User Access Administrator assignments.
    exclude_role_definition_ids = ["18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"]
  }
}
