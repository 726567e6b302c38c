"""Internals of the LSST alert pipeline; the entry points are the top-level scripts.

Two halves that never import each other: ``consumer/`` (Kafka alerts → one CSV per day,
FITS cutouts and light curves, exactly once; ``report/`` reads what it wrote) and
``storehouse/`` (Fink rows and multi-messenger events → one JSON slot per object or event,
cross-matched and enriched). Both stand on the shared floor, the modules here:
``durable``, ``exitcodes``, ``errors``, ``masking``, ``quarantine``, ``settings`` (the
settings machinery), ``kafka_settings`` and ``steps`` (the cron wrapper's steps).
Nothing here imports test or demo support (the top-level ``devtools/`` and ``tests/``,
not shipped). ``docs/architecture.md`` has the whole map.
"""
