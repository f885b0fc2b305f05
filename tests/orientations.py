"""Axis orders the storage-order (metamorphic) tests store the same CT in: identity, two flips, and
permutations with flips, so every axis is moved at least once."""

STORAGE_ORDERS = (("R", "A", "S"), ("L", "P", "S"), ("P", "I", "R"), ("S", "R", "A"))
