// Typeahead for every field that picks a record (<input data-pick="account|contact">): as the
// person types, the directory's matches from /api/search (accounts and contacts only, never a
// full-text search per keystroke) fill a <datalist> under the field. The server resolves what
// is finally typed or picked by name, address, number or domain, so the form works without
// this script too.
"use strict";

(function () {
  const WAIT_MS = 150;
  const SHOWN = 8;

  function option(list, value, label) {
    const item = document.createElement("option");
    item.value = value;
    if (label && label !== value) item.label = label;
    list.appendChild(item);
  }

  function attach(field, n) {
    const kind = field.dataset.pick;
    const list = document.createElement("datalist");
    list.id = "pick-" + kind + "-" + n;
    field.after(list);
    field.setAttribute("list", list.id);
    field.setAttribute("autocomplete", "off");
    let timer = null;
    let asked = 0;
    field.addEventListener("input", function () {
      clearTimeout(timer);
      const typed = field.value.trim();
      if (typed.length < 2) return;
      timer = setTimeout(async function () {
        const mine = ++asked;
        const url = "/api/search?" + new URLSearchParams({ q: typed, kinds: kind, limit: SHOWN });
        let found;
        try {
          const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
          if (!answer.ok) return;
          found = await answer.json();
        } catch (e) {
          return; // offline or logged out: the field still takes what is typed
        }
        if (mine !== asked) return; // a newer keystroke asked meanwhile
        list.replaceChildren();
        if (kind === "account") {
          for (const a of found.accounts) option(list, a.name, a.domains.join(", "));
        } else {
          for (const c of found.contacts) {
            // An address names one contact where two may share a name.
            option(list, c.emails[0] || c.phones[0] || c.name, c.name);
          }
        }
        field.dispatchEvent(new Event("typeahead-filled"));
      }, WAIT_MS);
    });
  }

  document.querySelectorAll("input[data-pick]").forEach(attach);
})();
