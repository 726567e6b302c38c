"""Enrichments: what the storehouse adds to slots the build wrote (TNS classes, the
cross-match with messenger events), each owning its slot fields and roster section."""
