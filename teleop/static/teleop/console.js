// Teleop pages with a label panel (the session console, an episode): j/k select episodes and
// open their panel, x goes to the discard reason, Enter saves the panel's form, and keys
// pressed while the next panel loads wait for it. Needs core/app.js, loaded before it.
// No build step.
(function () {
  "use strict";
  const pg = window.provingGround;

  function labelPanel() { return document.getElementById("label-panel"); }

  function rows() { return Array.from(document.querySelectorAll("[data-episode-row]")); }

  function select(row) {
    rows().forEach((r) => r.classList.remove("selected"));
    if (!row) return;
    row.classList.add("selected");
    // Remembered so the row stays selected when the live table is refreshed.
    document.body.dataset.selectedEpisode = row.dataset.episodeRow;
    row.scrollIntoView({ block: "nearest" });
    const open = row.querySelector("[data-open-label]");
    const panel = labelPanel();
    if (open) open.click();
    // An episode that is not ready has no panel; the previous one's must not stay on show.
    else if (panel) panel.innerHTML = '<p class="muted">Nothing to label: this episode is not ready.</p>';
  }

  function move(step) {
    const all = rows();
    if (!all.length) return false;
    const current = all.findIndex((r) => r.classList.contains("selected"));
    select(all[Math.max(0, Math.min(all.length - 1, current + step))] || all[0]);
    return true;
  }

  // x and Enter; undefined for the keys core/app.js handles.
  function act(key) {
    if (key === "x") {
      const reason = (labelPanel() || document).querySelector("[data-discard-reason]:not([readonly])");
      if (reason) reason.focus();
      return !!reason;
    }
    if (key === "Enter") {
      const form = document.activeElement && document.activeElement.closest("form");
      if (form && labelPanel() && labelPanel().contains(form)) form.requestSubmit();
      return !!form;
    }
    return undefined;
  }

  // --- Keys wait for the selected episode's panel ------------------------------------------
  // j opens the next episode's label panel with an htmx request. Until it is swapped in, the
  // panel on show is the previous episode's, so keys that act on a panel (s f p 1-9 x Enter
  // Ctrl+Enter, and the reason typed after x) wait in `waiting` and are replayed, in order, once
  // it is. Saves of the panel wait the same way, since their answer replaces the form.
  const READY = "ready", LOADING = "loading", NONE = "none";
  const panelRequests = new Set();
  const waiting = [];
  let typingReason = false;  // an x waits: what follows is its reason, up to Enter or Escape

  function panelState() {
    const panel = labelPanel();
    if (!panel) return READY;
    if (panelRequests.size) return LOADING;
    const selected = document.body.dataset.selectedEpisode;
    if (!selected) return READY;  // the episode page, or the console before a row is chosen
    const shown = panel.querySelector("[data-panel-episode]");
    return shown && shown.dataset.panelEpisode === selected ? READY : NONE;
  }

  function episodeOf(el) {
    const holder = el && el.closest("[data-episode-row], [data-panel-episode]");
    return holder && (holder.dataset.episodeRow || holder.dataset.panelEpisode);
  }

  function hold(event) {
    if (event.altKey || event.metaKey) return false;
    if (!waiting.length && panelState() !== LOADING) return false;
    const panel = labelPanel();
    if (pg.typing(event) && !panel.contains(event.target)) return false;
    const key = event.key;
    if (typingReason) {
      if (event.ctrlKey || !(key.length === 1 || ["Backspace", "Enter", "Escape"].includes(key))) {
        return false;
      }
      if (key === "Enter" || key === "Escape") typingReason = false;
      waiting.push({ key, text: true });
      return true;
    }
    const onPanel = event.ctrlKey ? key === "Enter" : /^[sfpx1-9]$/.test(key) ||
      key === "Enter" && (event.target === document.body || panel.contains(event.target));
    // Once keys wait, the others wait behind them, so they all run in the order pressed.
    const inOrder = !event.ctrlKey && ["j", "k", "?"].includes(key) && waiting.length > 0;
    if (!onPanel && !inOrder) return false;
    waiting.push({ key, ctrl: event.ctrlKey });
    if (key === "x" && !event.ctrlKey) typingReason = true;
    return true;
  }

  // A waiting reason character goes into the focused field as if typed there.
  function typeInto(field, key) {
    if (!pg.isTextField(field)) return;  // read-only fields are not text fields
    if (key === "Enter") { if (field.form) field.form.requestSubmit(); return; }
    if (key === "Escape") { pg.leaveField(field); return; }
    const start = field.selectionStart, end = field.selectionEnd;
    if (key === "Backspace") field.setRangeText("", start === end ? Math.max(0, start - 1) : start, end, "end");
    else field.setRangeText(key, start, end, "end");
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function replay() {
    while (waiting.length) {
      const state = panelState();
      if (state === LOADING) return;
      const entry = waiting.shift();
      // With no panel for the selected row (not ready, or its load failed), keys meant for a
      // panel are dropped, and so is the reason after a dropped x: never read as shortcuts.
      if (entry.text) typeInto(document.activeElement, entry.key);
      else if (state === READY || ["j", "k", "?"].includes(entry.key)) pg.act(entry.key, entry.ctrl);
    }
    typingReason = false;  // the rest of a reason is typed straight into its field
  }

  pg.fieldHomes.unshift("#label-panel");
  pg.movers.unshift(move);
  pg.actions.push(act);
  pg.interceptors.push(function (event) {
    if (waiting.length && panelState() !== LOADING) replay();
    return hold(event);
  });

  document.addEventListener("htmx:beforeSend", function (event) {
    if (!labelPanel() || event.detail.target !== labelPanel()) return;
    const xhr = event.detail.xhr;
    panelRequests.add(xhr);
    // loadend comes after htmx's load handler, so the answer is swapped in by then.
    xhr.addEventListener("loadend", function () { panelRequests.delete(xhr); replay(); });
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    const panel = labelPanel();
    if (!panel || event.detail.target !== panel) return;
    // An answer for a row that is no longer selected (j pressed again) must not replace the
    // panel of the one that is.
    const selected = document.body.dataset.selectedEpisode;
    const from = episodeOf(event.detail.requestConfig.elt);
    if (selected && from && from !== selected) { event.detail.shouldSwap = false; return; }
    // A refused form (400) comes back with its errors to show (htmx swaps no 4xx by default).
    // Keys pressed after it were meant for after a save; they are dropped, not misapplied.
    if (event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      waiting.length = 0;
      typingReason = false;
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    const panel = labelPanel();
    if (panel && event.detail.target === panel) {
      // After a save the keys are shortcuts again: the focus leaves the field htmx put it back
      // in (notes, reason). A focus the swap removed goes to the panel too, not to the page.
      if (panel.querySelector("[data-done]") || document.activeElement === document.body) {
        panel.focus({ preventScroll: true });
      }
    }
    // Keep the selected row highlighted when the live table is refreshed.
    const selected = document.body.dataset.selectedEpisode;
    if (!selected) return;
    const row = document.querySelector(`[data-episode-row="${selected}"]`);
    if (row) row.classList.add("selected");
  });

  // --- No stale "saved" beside a new error --------------------------------------------------
  // A message that a change was saved belongs to that change: a new submit of a panel form
  // (refused by the server, or stopped by the browser's own validation) removes it, and the
  // page's flash of an earlier save with it.
  function forgetDone(event) {
    const panel = labelPanel();
    if (!panel || !panel.contains(event.target)) return;
    panel.querySelectorAll("[data-done]").forEach((el) => el.remove());
    document.querySelectorAll(".flash.success[role=status]").forEach((el) => el.remove());
  }
  document.addEventListener("submit", forgetDone, true);
  document.addEventListener("invalid", forgetDone, true);

  document.addEventListener("click", function (event) {
    const row = event.target.closest("[data-episode-row]");
    if (row) {
      document.body.dataset.selectedEpisode = row.dataset.episodeRow;
      rows().forEach((r) => r.classList.toggle("selected", r === row));
    }
  });
})();
