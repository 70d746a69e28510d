// The leaderboard page's only script, inlined into index.html. Rows come in groups, one <tbody>
// per protocol group (its first row the heading); rows are sorted within their group, so a
// ranking never mixes protocols. Sorting: a click on a column header sorts by its cells'
// data-value (numerically for data-type="number"); the first click uses the header's data-first
// direction (the best first), a second click reverses it. Empty values stay last either way.
// Filters: each <select data-filter="K"> hides the rows whose data-f-K differs from the chosen
// value, and a group with no row left. The details toggle needs no script (CSS). Nothing here
// reads or writes HTML strings.
(function () {
  "use strict";
  var table = document.getElementById("leaderboard");
  if (!table) { return; }  // no classification cells: the page has section tables only
  var groups = Array.prototype.slice.call(table.tBodies);
  var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-order]"));
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var counter = document.getElementById("row-count");

  function compare(a, b, numeric) {
    if (numeric) { return parseFloat(a) - parseFloat(b); }
    return a < b ? -1 : (a > b ? 1 : 0);
  }

  function sortBy(th, index) {
    var numeric = th.getAttribute("data-type") === "number";
    var current = th.getAttribute("aria-sort");
    var first = th.getAttribute("data-first") || "ascending";
    var dir = current ? (current === "ascending" ? "descending" : "ascending") : first;
    var sign = dir === "ascending" ? 1 : -1;
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    groups.forEach(function (group) {
      var sorted = Array.prototype.slice.call(group.querySelectorAll("tr[data-order]"));
      sorted.sort(function (ra, rb) {
        var a = ra.cells[index].getAttribute("data-value") || "";
        var b = rb.cells[index].getAttribute("data-value") || "";
        if ((a === "") !== (b === "")) { return a === "" ? 1 : -1; }
        var c = (a === "") ? 0 : compare(a, b, numeric);
        if (c === 0) { return Number(ra.getAttribute("data-order")) - Number(rb.getAttribute("data-order")); }
        return sign * c;
      });
      sorted.forEach(function (r) { group.appendChild(r); });  // after the heading row, which stays first
    });
  }

  headers.forEach(function (th, index) {
    th.addEventListener("click", function () { sortBy(th, index); });
    th.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(th, index); }
    });
  });

  function applyFilters() {
    var shown = 0;
    rows.forEach(function (row) {
      var visible = selects.every(function (s) {
        return s.value === "" || row.getAttribute("data-f-" + s.getAttribute("data-filter")) === s.value;
      });
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    groups.forEach(function (group) {
      group.hidden = !group.querySelector("tr[data-order]:not([hidden])");
    });
    counter.textContent = shown + " of " + rows.length + " rows shown";
  }

  selects.forEach(function (s) { s.addEventListener("change", applyFilters); });
  applyFilters();
}());
