"""Validation: Invoice -> problems, one small module per family of rules."""
