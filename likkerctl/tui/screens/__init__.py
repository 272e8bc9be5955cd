"""The screens shown over the dashboard (help, an action's dry run and run), one a module."""
