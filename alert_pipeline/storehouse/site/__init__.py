"""The storehouse's static site (``transient_kind_builder.py pages``): a page per slot and an index.

``markup`` (escaping, numbers, tables, the page frame), ``assets`` (the one style sheet and
script, written into the site), ``plots`` (light curves and zoomed sky plots as inline
SVG), ``skymap_plot`` (the gw Mollweide map, matplotlib), ``summaries`` (what a page of
one slot shows of another, and which slots it links to), ``kinds`` (the page of each kind),
``index`` (``index.html``), ``state`` (what was written from what, under
``<storehouse>/state/pages.json`` and ``state/pages/``) and ``build`` (the incremental run).
"""
