# The same module against a live ARM API, no mocks: the Azure emulator (or a real
# subscription). It lives outside tests/, so a plain `terraform test` does not run it; run it
# when the emulator is up:
#
#   ARM_SUBSCRIPTION_ID=... ARM_TENANT_ID=... ARM_CLIENT_ID=... ARM_CLIENT_SECRET=... \
#   ARM_METADATA_HOSTNAME=... ARM_CA_CERTIFICATE_FILE=... ARM_USE_CLI=false \
#   terraform test -test-directory=emulator -var subscription_id=$ARM_SUBSCRIPTION_ID
#
# (the emulator's ready file has every value). It expects westeurope to hold two machines of
# the module's scope: one to attach the identity to, one tagged mig-exclude = "true".
# Terraform destroys what the runs created when the file ends.

variables {
  locations = ["westeurope"]
}

run "identity_created_and_attached" {
  assert {
    condition     = lower(output.identity_ids["westeurope"]) == lower(output.expected_identity_ids["westeurope"])
    error_message = "the identity is the built-in policy's: ${output.identity_ids["westeurope"]}"
  }

  assert {
    condition     = output.assigned["westeurope"] == 1
    error_message = "one machine to attach: ${jsonencode(output.assigned)}"
  }

  assert {
    condition     = length(mig_identity_assignment.region["westeurope"].skipped) == 1
    error_message = "the tagged machine is skipped: ${jsonencode(mig_identity_assignment.region["westeurope"].skipped)}"
  }
}

run "a_second_apply_changes_nothing" {
  assert {
    condition     = output.assigned == run.identity_created_and_attached.assigned
    error_message = "the second apply attached nothing new"
  }
}
