"""Ontology parsing, ancestor closure, propagation and information accretion."""
