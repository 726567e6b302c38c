"""The storehouse half: Fink ZTF alerts and multi-messenger events as one JSON slot per
object or event, on disk.

``slots`` (the generic slot store) and ``layout`` (every path under a storehouse) at the
bottom; ``kinds`` (the registry of slot kinds) over ``fink/`` (transient, minor_body) and
``messengers/`` (gw, neutrino, uhecr, grb: each kind's module declares its readers and rules);
``enrich/`` (TNS classes, the cross-match) over the kinds; ``builder/`` (the command line,
one module per sub-command) on top. It imports the shared floor and nothing of the
consumer half.
"""
