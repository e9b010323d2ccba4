// Keyboard shortcuts (no framework): j/k move through the queue, Enter opens the selected
// ticket, c claims the open ticket, r resolves it (in the queue: refreshes the rows). Typing in a
// field is ignored.
(function () {
  "use strict";
  var index = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.row")); }
  function select(next) {
    var all = rows();
    if (!all.length) { return; }
    index = Math.max(0, Math.min(all.length - 1, next));
    all.forEach(function (row, i) { row.classList.toggle("sel", i === index); });
    all[index].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName)) { return; }
    if (event.key === "j") { select(index + 1); }
    else if (event.key === "k") { select(index - 1); }
    else if (event.key === "Enter" && index >= 0) {
      var row = rows()[index];
      if (row) { window.location.href = row.getAttribute("data-href"); }
    } else if (event.key === "c") {
      var claim = document.getElementById("act-claim");
      if (claim) { claim.click(); }
    } else if (event.key === "r") {
      // On a ticket page r marks it resolved (as c claims); in the queue it refreshes the rows.
      var resolve = document.getElementById("act-resolve");
      if (resolve) { resolve.click(); return; }
      var body = document.getElementById("rows");
      if (body && window.htmx) { window.htmx.ajax("GET", body.getAttribute("hx-get"), { target: body, swap: "innerHTML" }); }
      else { window.location.reload(); }
    }
  });
})();
