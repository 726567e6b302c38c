"""The consumer half: alerts from Kafka (or files) into one CSV per day, FITS cutouts and
light curves, exactly once.

One way: ``config`` → ``sources`` (files, ``kafka_source``, ``replay``) → ``decode``
(``schema_guard``, ``avro``, ``limits``) → ``records`` → ``store`` (``cutouts``, ``csvfiles``,
the floor's ``quarantine``, ``ledger``) → ack, driven by ``runner`` and ``session``; ``layout``
names every file of the output directory. It imports the shared floor (``alert_pipeline``'s
top-level modules) and nothing of the storehouse half.
"""
