"""Accounts: API tokens, login lockout, password rules."""
