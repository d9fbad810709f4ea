"""End-to-end tests: real processes, real clients, the repository as a user has it."""
