// Proving Ground pages: keyboard shortcuts for the teleop and evaluation consoles. No build step.
(function () {
  "use strict";

  function typing(event) {
    const el = event.target;
    return el && (el.tagName === "INPUT" && !["radio", "checkbox"].includes(el.type) ||
      el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

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
    if (open) open.click();
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const current = all.findIndex((r) => r.classList.contains("selected"));
    select(all[Math.max(0, Math.min(all.length - 1, current + step))] || all[0]);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey && event.key === "Enter") {
      const form = activeForm();
      // The primary button is the default action ("Save and next trial" in the evaluation
      // console); requestSubmit() without a submitter would send neither button's name.
      if (form) { event.preventDefault(); form.requestSubmit(form.querySelector("button.primary")); }
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event)) return;
    const panel = activeForm();
    const outcome = { s: "success", f: "failure", p: "partial" }[event.key];
    if (event.key === "j" || event.key === "k") {
      const step = event.key === "j" ? 1 : -1;
      if (rows().length) move(step); else moveForm(step);
      event.preventDefault();
    }
    else if (outcome && panel) {
      const radio = panel.querySelector(`input[name=outcome][value=${outcome}]`);
      if (radio) { radio.checked = true; radio.focus(); event.preventDefault(); }
    } else if (/^[1-9]$/.test(event.key) && panel) {
      const stage = panel.querySelectorAll("input[name=stages_reached]")[Number(event.key) - 1];
      if (stage) { stage.checked = !stage.checked; event.preventDefault(); }
    } else if (event.key === "x") {
      const reason = document.querySelector("[data-discard-reason]");
      if (reason) { reason.focus(); event.preventDefault(); }
    } else if (event.key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) { help.open = !help.open; event.preventDefault(); }
    }
  });

  // Keep the selected row highlighted when the live table is refreshed.
  document.addEventListener("htmx:afterSwap", function (event) {
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
