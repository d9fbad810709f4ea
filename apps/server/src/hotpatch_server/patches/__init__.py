"""Patches: the differences between releases, and the embedded bundles first updates start from."""
