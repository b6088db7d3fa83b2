// The sync section of /admin/connectors/{name}: while a sync runs, ask the JSON endpoint named
// by data-sync-progress for its progress about once a second and show it in place. Without
// JavaScript the page reloads itself instead (a <noscript> refresh), so nothing here is needed.
"use strict";

(function () {
  const box = document.querySelector("[data-sync-progress]");
  if (!box) {
    return;
  }
  const url = box.getAttribute("data-sync-progress");
  const LABELS = {
    none: "no run recorded",
    running: "running",
    done: "done",
    failed: "failed",
    interrupted: "interrupted (its process stopped)",
  };
  const COUNTS = ["new", "duplicates", "matched", "unmatched", "quarantined", "skipped", "errors"];

  function put(name, text) {
    for (const element of box.querySelectorAll('[data-field="' + name + '"]')) {
      element.textContent = text;
    }
  }

  function show(progress) {
    box.setAttribute("data-state", progress.state);
    put("state", LABELS[progress.state] || progress.state);
    put("fetched", String(progress.fetched));
    const report = box.querySelector("[data-report]");
    if (progress.report && report) {
      for (const name of COUNTS) {
        put(name, String(progress.report[name] || 0));
      }
      put("error", progress.report.error || "");
      report.hidden = false;
    }
    const button = box.querySelector("button[data-sync-now]");
    if (button) {
      button.disabled = progress.state === "running";
    }
  }

  async function poll() {
    try {
      const answer = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (answer.ok) {
        const progress = await answer.json();
        show(progress);
        if (progress.state === "running") {
          window.setTimeout(poll, 1000);
        }
        return;
      }
      if ([401, 403, 404].includes(answer.status)) {
        return; // signed out, or the connector is gone: a reload says which
      }
    } catch (e) {
      // The server restarts, or the network is down for a moment: try again a little later.
    }
    window.setTimeout(poll, 3000);
  }

  if (box.getAttribute("data-state") === "running") {
    window.setTimeout(poll, 1000);
  }
})();
