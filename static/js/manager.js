/* Lanyard manager pages: small behaviours with no inline script (the CSP forbids it). */
(function () {
  "use strict";

  // "Copy PIN": copy the text of the element named by data-copy-target.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source) return;
    var text = source.textContent.trim();
    var done = function () {
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
      try { document.execCommand("copy"); done(); } catch (e) { /* selected for manual copy */ }
    }
  });

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Forget a shown PIN when the page is hidden (tab switched, tablet locked): it is shown once.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "hidden") return;
    document.querySelectorAll("output.pin").forEach(function (pin) {
      pin.textContent = "••••••••";
    });
  });

  // Show the activation date field only when "Later" is chosen.
  function syncActivation(root) {
    root.querySelectorAll("form").forEach(function (form) {
      var later = form.querySelector('input[type=radio][name$="activation"][value="later"]');
      var start = form.querySelector('input[name$="-start"]');
      if (!later || !start) return;
      var field = start.closest(".field");
      field.hidden = !later.checked;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches('input[name$="activation"]')) syncActivation(document);
  });
  document.addEventListener("DOMContentLoaded", function () { syncActivation(document); });
  document.addEventListener("htmx:afterSettle", function () { syncActivation(document); });

  // The worker list: "select all on this page" and the count of selected workers.
  function countSelected(form) {
    var counter = form.querySelector("[data-selected-count]");
    if (counter) counter.textContent = form.querySelectorAll('input[name="worker"]:checked').length;
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    var form = box.closest && box.closest("form");
    if (!form) return;
    var name = box.getAttribute("data-select-all");
    if (name) {
      form.querySelectorAll('input[name="' + name + '"]').forEach(function (one) {
        one.checked = box.checked;
      });
    }
    if (name || box.name === "worker") countSelected(form);
  });
  // Progress fragments poll through `load delay:…` chains: each answer carries the next poll
  // (portal/templatetags/polling.py). A failed poll (a proxy's 502, a dropped connection) would
  // end the chain, so try again a second later, as the fixed `every 1s` poll used to.
  function pollAgain(event) {
    var elt = event.detail && event.detail.elt;
    if (!elt || !elt.matches || !elt.matches("[data-poll]") || !window.htmx) return;
    if (event.type === "htmx:afterRequest" && !event.detail.failed) return;
    window.htmx.trigger(elt, "poll-retry");
  }
  document.addEventListener("htmx:afterRequest", pollAgain);
  document.addEventListener("htmx:sendError", pollAgain);
})();
