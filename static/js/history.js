// Forget htmx history snapshots (docs/architecture.md §5 "Web"): htmx's history cache is off
// (historyCacheSize 0 in base.html), and this removes what an older page may have left in
// localStorage, so no worker list survives sign-out on a shared PC. Runs on every page, including
// the one sign-out lands on.
try {
  window.localStorage.removeItem("htmx-history-cache");
} catch (e) {
  // Storage disabled: nothing was kept.
}
