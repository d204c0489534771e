"""The live wing: how a committed event reaches every open socket of its user."""
