"""The audit trail: every human command, and every refused attempt, in an append-only table of each
service's schema. Rules: ``docs/rules/access.md``, section "Audit trail"."""
