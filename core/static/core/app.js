// Proving Ground pages: keyboard shortcuts for the teleop and evaluation consoles. No build step.
(function () {
  "use strict";

  // A field the keys type into (a read-only one, like a discarded episode's reason, is not).
  function isTextField(el) {
    return !!el && !el.readOnly && (el.tagName === "INPUT" && !["radio", "checkbox"].includes(el.type) ||
      el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

  function typing(event) { return isTextField(event.target); }

  function labelPanel() { return document.getElementById("label-panel"); }

  // The scoring form the keys act on: the one holding the focus, else the first on the page.
  function activeForm() {
    const focused = document.activeElement && document.activeElement.closest("form[data-label-form]");
    return focused || document.querySelector("form[data-label-form]");
  }

  function rows() { return Array.from(document.querySelectorAll("[data-episode-row]")); }

  // On a page of scoring forms (the evaluation console with several robots), j/k move the
  // focus to the next or previous form, so the other keys act on that robot's trial.
  function moveForm(step) {
    const all = Array.from(document.querySelectorAll("form[data-label-form]"));
    if (all.length < 2) return;
    const current = all.indexOf(activeForm());
    const form = all[Math.max(0, Math.min(all.length - 1, current + step))];
    const target = form.querySelector("input[name=outcome]:checked") ||
      form.querySelector("input:not([type=hidden]), select, textarea, button");
    if (target) target.focus();
    (form.closest("section") || form).scrollIntoView({ block: "nearest" });
  }

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
    if (!all.length) return;
    const current = all.findIndex((r) => r.classList.contains("selected"));
    select(all[Math.max(0, Math.min(all.length - 1, current + step))] || all[0]);
  }

  // Escape leaves a text field so the keys are shortcuts again. The focus goes to the panel or
  // scoring form the field is in, so they still act on that one (not the page's first form).
  function leaveField(field) {
    const home = field.closest("#label-panel") || field.closest("form[data-label-form]");
    if (!home) { field.blur(); return; }
    if (!home.hasAttribute("tabindex")) home.setAttribute("tabindex", "-1");
    home.focus({ preventScroll: true });
  }

  // What a shortcut key does; false if nothing. Plain Enter is the browser's (submit the form
  // of the focused field), except when replayed, below.
  function act(key, ctrl) {
    if (ctrl) {
      const form = key === "Enter" && activeForm();
      // The primary button is the default action ("Save and next trial" in the evaluation
      // console); requestSubmit() without a submitter would send neither button's name.
      if (form) form.requestSubmit(form.querySelector("button.primary"));
      return !!form;
    }
    const panel = activeForm();
    const outcome = { s: "success", f: "failure", p: "partial" }[key];
    if (key === "j" || key === "k") {
      const step = key === "j" ? 1 : -1;
      if (rows().length) move(step); else moveForm(step);
      return true;
    }
    if (outcome && panel) {
      const radio = panel.querySelector(`input[name=outcome][value=${outcome}]`);
      if (radio) { radio.checked = true; radio.focus(); }
      return !!radio;
    }
    if (/^[1-9]$/.test(key) && panel) {
      const stage = panel.querySelectorAll("input[name=stages_reached]")[Number(key) - 1];
      if (stage) stage.checked = !stage.checked;
      return !!stage;
    }
    if (key === "x") {
      const reason = (labelPanel() || document).querySelector("[data-discard-reason]:not([readonly])");
      if (reason) reason.focus();
      return !!reason;
    }
    if (key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) help.open = !help.open;
      return !!help;
    }
    if (key === "Enter") {
      const form = document.activeElement && document.activeElement.closest("form");
      if (form && labelPanel() && labelPanel().contains(form)) form.requestSubmit();
      return !!form;
    }
    return false;
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
    if (typing(event) && !panel.contains(event.target)) return false;
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
    if (!isTextField(field)) return;  // read-only fields are not text fields
    if (key === "Enter") { if (field.form) field.form.requestSubmit(); return; }
    if (key === "Escape") { leaveField(field); return; }
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
      else if (state === READY || ["j", "k", "?"].includes(entry.key)) act(entry.key, entry.ctrl);
    }
    typingReason = false;  // the rest of a reason is typed straight into its field
  }

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

  document.addEventListener("keydown", function (event) {
    if (waiting.length && panelState() !== LOADING) replay();
    if (hold(event)) { event.preventDefault(); return; }
    if (event.key === "Escape" && typing(event)) { leaveField(event.target); return; }
    const ctrlEnter = event.ctrlKey && event.key === "Enter";
    if (!ctrlEnter && (event.altKey || event.ctrlKey || event.metaKey || typing(event))) return;
    if ((ctrlEnter || event.key !== "Enter") && act(event.key, event.ctrlKey)) event.preventDefault();
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

  document.addEventListener("click", function (event) {
    const row = event.target.closest("[data-episode-row]");
    if (row) {
      document.body.dataset.selectedEpisode = row.dataset.episodeRow;
      rows().forEach((r) => r.classList.toggle("selected", r === row));
    }
  });
})();
