"""Tests of the Primero v2 client (adapter.primero)."""
