"""Accounts, API keys, login tokens, the credit ledger and rate limits."""
