"""Internals of the LSST alert pipeline; the entry points are the top-level scripts.

The consumer, one way: config → sources (files, ``kafka_source``, ``replay``) → decode
(``schema_guard``, ``avro``, ``limits``) → records → store (cutouts, csvfiles, quarantine,
ledger, durable) → ack, driven by ``runner`` and ``session``; ``report/`` the nightly
report; ``merge`` several output directories into one. The builder: ``fink/`` (events
table → transient and minor_body slots), ``messengers/`` (gw, neutrino, uhecr slots and the
cross-match), ``storehouse`` and ``kinds`` (the slot store and its registry). Shared:
``layout`` (the output directory's names), ``exitcodes`` (every tool's codes), ``clients``
(the Kafka and registry clients' settings). Nothing here imports test or demo support
(the top-level ``devtools/`` and ``tests/``, not shipped).
"""
