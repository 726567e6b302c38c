"""Sample data, local services and test hooks: for the demo, the tests and the benchmarks.

Nothing in the consumer, the filter or the builder imports these at run time (the crash
hook and the test clock are loaded only when their ``LSST_CONSUMER_TEST_*`` variable is
set).

* ``factory``: LSST alert packets of any schema version, framed as brokers send them;
* ``fink_samples``: Fink API rows shaped like the seed's roster;
* ``local``: the embedded Kafka broker (Tansu) and PostgreSQL server;
* ``demo``: ``run_lsst_consumer.sh --demo``;
* ``filter_dry_run``: the ANTARES filter's local dry run;
* ``faults``, ``clock``: the crash hook and the movable clock the tests use.
"""
