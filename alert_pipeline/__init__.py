"""Internals of the LSST alert pipeline; the entry points are the top-level scripts.

config → kafka_loop → decode → records → outputs (the consumer, one way), storehouse and
fink (the transient-kind builder), local (embedded Kafka broker and PostgreSQL), factory
and fink_samples (sample data), demo.
"""
