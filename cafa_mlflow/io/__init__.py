"""Readers and writers for CAFA files: FASTA, terms, taxonomy, IA, submissions."""
