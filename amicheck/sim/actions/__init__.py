"""The action handlers, by area, each module with its ``HANDLERS`` table: system, calls
(channels), bridges (bridges and parking), queues, config. :mod:`amicheck.sim.handlers`
merges the tables (bridges' comes in through calls' until handlers.py lists it)."""
