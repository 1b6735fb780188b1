"""The rule catalogue: every rule declared once, in one module per family."""
