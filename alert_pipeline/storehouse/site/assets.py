"""The site's one style sheet and one script, written beside ``index.html``.

The script only sorts and filters tables already on the page: the site reads the same
without it and fetches nothing.
"""

from __future__ import annotations

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1240px; padding: 0 10px; color: #222; }
h1 { font-size: 1.4em; margin: 0.3em 0; } h2 { font-size: 1.1em; margin-top: 1.4em; }
nav { font-size: 0.9em; margin-bottom: 0.5em; }
.scroll { max-width: 100%; overflow-x: auto; }
.tall { max-height: 22em; overflow-y: auto; border: 1px solid #ddd; display: inline-block; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; overflow-wrap: break-word; }
td { max-width: 32em; }
th { background: #eef; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
dl.values { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 0.9em; }
dl.values dt { font-weight: 600; } dl.values dd { margin: 0; overflow-wrap: anywhere; max-width: 60em; }
ul.records { margin: 0; padding-left: 1.2em; } ul.records li { margin-bottom: 4px; }
.plot { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.filters { margin: 0.5em 0; font-size: 0.9em; } .filters label { margin-right: 1em; }
.muted { color: #666; font-size: 0.85em; }
.links a { margin-right: 0.8em; }
tr[hidden] { display: none; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-v');
    if (v === null) { v = cell.textContent.trim(); }
    var n = Number(v);
    return v !== '' && !isNaN(n) ? n : v.toLowerCase();
  }
  function sortBy(table, column, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[column]), y = key(b.cells[column]);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener('click', function () { sortBy(table, column, th); });
    });
  });
  var filters = document.querySelectorAll('[data-filter]');
  function apply() {
    var wanted = {};
    Array.prototype.forEach.call(filters, function (f) { wanted[f.getAttribute('data-filter')] = f.value; });
    Array.prototype.forEach.call(document.querySelectorAll('tr[data-class]'), function (r) {
      var date = r.getAttribute('data-date') || '';
      var show = (!wanted['class'] || r.getAttribute('data-class') === wanted['class']) &&
        (!wanted['kind'] || (' ' + r.getAttribute('data-kinds') + ' ').indexOf(' ' + wanted['kind'] + ' ') >= 0) &&
        (!wanted['from'] || date >= wanted['from']) && (!wanted['to'] || date <= wanted['to'] + '~');
      r.hidden = !show;
    });
  }
  Array.prototype.forEach.call(filters, function (f) { f.addEventListener('input', apply); f.addEventListener('change', apply); });
})();
"""

#: File name → bytes, every asset of the site.
ASSETS = {"site.css": STYLE.encode(), "site.js": SCRIPT.encode()}
