"""Common Service Functions: one module per function, pure except for store reads."""
