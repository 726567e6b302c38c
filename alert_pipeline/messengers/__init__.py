"""The messenger kinds of the event storehouse: gravitational waves (``gw``), neutrinos
(``neutrino``) and ultra-high-energy cosmic rays (``uhecr``).

* ``events``: what every reader yields (``Item``) and the checks every event passes;
* ``skymaps``: LVK sky maps read (multi-order or flat, streamed), checked, stored as
  multi-order, measured;
* ``gw``, ``neutrino``, ``uhecr``: one kind each, its readers and its ``SPEC``;
* ``formats``: which format a file holds, from its content;
* ``load``: items into slots, with the rules that merge versions of one event;
* ``gcn``: new notices from GCN Kafka.
"""
