"""The `descent` command."""
