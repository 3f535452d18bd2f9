"""The poll cycle and the daemon around it."""
