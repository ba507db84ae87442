"""Who may do what, and who did: API keys, staff accounts, the audit trail."""
