"""The `likkerctl` command: `main` (the app, plugins, and every error mapped to its exit code
in `errors`), `output` (one way to answer: a --json document or Rich for people), `tables`
(renderings shared by commands), and `commands/`, one module per noun."""
