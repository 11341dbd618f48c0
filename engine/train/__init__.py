"""Training code for the learned signals and the router (``modelroute train``)."""
