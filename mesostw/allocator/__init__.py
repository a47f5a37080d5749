"""Hierarchical DRF allocation: role and framework sorters, refusal filters, the allocator."""
