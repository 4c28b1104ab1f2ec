/* Lanyard kiosk: small behaviours with no inline script (the CSP forbids it).
   The queue itself refreshes through htmx polling (hx-trigger="every 10s"). */
(function () {
  "use strict";

  // After "Open PDF to print" (a new tab), refresh the queue soon so the sheet shows as opened
  // and its "Mark printed" button is the obvious next step.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-open-sheet]");
    if (!link || !window.htmx) return;
    var job = link.closest("[data-job]");
    if (job) job.classList.add("opened");
    window.setTimeout(function () {
      var queue = document.getElementById("queue");
      if (queue) window.htmx.ajax("GET", queue.getAttribute("hx-get"), { target: "#queue", swap: "outerHTML" });
    }, 1500);
  });
})();
