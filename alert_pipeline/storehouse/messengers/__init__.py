"""The messenger kinds of the event storehouse: gravitational waves (``gw``), neutrinos
(``neutrino``) and ultra-high-energy cosmic rays (``uhecr``).

* ``events``: what every reader yields (``Item``) and the checks every event passes;
* ``skymaps``: LVK sky maps read (multi-order or flat, streamed), checked, stored as
  multi-order, measured;
* ``kind``: what a messenger kind declares (``MessengerKind``): its readers, roster,
  revision rule, GCN topics and cross-match rule with its settings;
* ``gw``, ``neutrino``, ``uhecr``: one kind each, its readers, its ``SPEC`` and its
  ``KIND_SPEC``, listed in ``alert_pipeline.storehouse.kinds.MESSENGER_MODULES`` (a new kind: its
  module plus that one line);
* ``formats``: which format a file holds, from its content (asking each kind's readers);
* ``load``: items into slots, with each kind's rule that merges versions of one event;
* ``gcn``: new notices from GCN Kafka (each kind's topics);
* ``crossmatch``: the match functions and ``Rules``; ``matching``: the ``crossmatch``
  command, each kind matched by its own rule.
"""
