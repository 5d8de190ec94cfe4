"""Shipped search spaces, one TOML per model alias (see README, "Search spaces")."""
