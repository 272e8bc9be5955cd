"""The dashboard's own widgets, one a module."""
