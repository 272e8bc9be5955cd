"""The Textual incident dashboard (`likkerctl dashboard`)."""
