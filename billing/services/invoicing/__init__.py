"""Invoicing: invoices, the ledger, pay links, receipts."""
