"""`likkerctl webhook serve`: the Alertmanager receiver that runs runbooks (likkerctl.runbooks)."""
