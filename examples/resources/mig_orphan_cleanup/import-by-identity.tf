# Terraform 1.12+: import by resource identity, the scope searched. An import removes
# nothing; the next plan shows what `mode` would remove (none in "report" mode).
import {
  to = mig_orphan_cleanup.subscription
  identity = {
    scope = "/subscriptions/00000000-0000-0000-0000-000000000000"
  }
}

resource "mig_orphan_cleanup" "subscription" {
  scope = "/subscriptions/00000000-0000-0000-0000-000000000000"
  mode  = "report"
}
