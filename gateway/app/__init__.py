"""Configuration, wiring, lifecycle and the command line."""
