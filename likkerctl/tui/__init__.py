"""The Textual incident dashboard (`likkerctl dashboard`): `app` (the panels and their
workers), `backend` (readings and actions, live or recorded), `parts` (what is held of each),
`render` (pure: figures in, Rich text out), `screens/` and `widgets/`, styles in
`dashboard.tcss`."""
