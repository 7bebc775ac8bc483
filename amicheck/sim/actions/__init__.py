"""The action handlers, by area; :mod:`amicheck.sim.handlers` merges their ``HANDLERS``."""
