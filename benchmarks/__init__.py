"""amicheck's benchmarks: a package of the checkout, not of the wheel.

Everything runs in ONE process, each number next to its floor measured in the same run, so
the ratios mean something on any machine. Tables go to stdout; nothing is asserted about time.

- ``stream``: the deterministic server-to-client byte stream (small events, long ChanVariable
  events, multi-KB command output; ~500 bytes per packet on average).
- ``libraries``: the split floor, amicheck's Parser and the common Python AMI libraries,
  each driven through its own parsing code.
- ``parser``, ``client``, ``sim``: the three benchmarks; ``servers``: their loopback peers.
- ``cli``: ``python -m benchmarks parser|client|sim|all [--quick]``; ``amicheck bench``
  calls :func:`benchmarks.cli.main` when run from a checkout.
"""
