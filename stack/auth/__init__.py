"""The auth service: users, their bots, tokens, bans between users, and operator bot blocks."""
