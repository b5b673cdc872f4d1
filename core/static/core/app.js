// Proving Ground pages: the keyboard shortcuts every scoring form has (s f p 1-9 ? Ctrl+Enter
// Escape), and the hooks the apps' page scripts plug into (teleop/console.js,
// evaluation/console.js). Loaded on every page, before those. No build step.
(function () {
  "use strict";

  // A field the keys type into (a read-only one, like a discarded episode's reason, is not).
  function isTextField(el) {
    return !!el && !el.readOnly && (el.tagName === "INPUT" && !["radio", "checkbox"].includes(el.type) ||
      el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  }

  function typing(event) { return isTextField(event.target); }

  // The scoring form the keys act on: the one holding the focus, else the first on the page.
  function activeForm() {
    const focused = document.activeElement && document.activeElement.closest("form[data-label-form]");
    return focused || document.querySelector("form[data-label-form]");
  }

  // Where the focus goes when Escape leaves a field inside it (besides a scoring form); the
  // teleop console adds its label panel.
  const fieldHomes = ["form[data-label-form]"];

  // Escape leaves a text field so the keys are shortcuts again. The focus goes to the panel or
  // scoring form the field is in, so they still act on that one (not the page's first form).
  function leaveField(field) {
    let home = null;
    for (const selector of fieldHomes) { home = field.closest(selector); if (home) break; }
    if (!home) { field.blur(); return; }
    if (!home.hasAttribute("tabindex")) home.setAttribute("tabindex", "-1");
    home.focus({ preventScroll: true });
  }

  // Page scripts register:
  //   movers: step => true if they moved (j is +1, k is -1); tried in order.
  //   actions: (key, ctrl) => true/false if the key is theirs, undefined if not.
  //   interceptors: keydown event => true to swallow the key before any shortcut runs.
  const movers = [];
  const actions = [];
  const interceptors = [];

  // What a shortcut key does; false if nothing. Plain Enter is the browser's (submit the form
  // of the focused field), unless a page script takes it.
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
      movers.some((mover) => mover(step));
      return true;
    }
    for (const action of actions) {
      const done = action(key, ctrl);
      if (done !== undefined) return done;
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
    if (key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) help.open = !help.open;
      return !!help;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (interceptors.some((intercept) => intercept(event))) { event.preventDefault(); return; }
    if (event.key === "Escape" && typing(event)) { leaveField(event.target); return; }
    const ctrlEnter = event.ctrlKey && event.key === "Enter";
    if (!ctrlEnter && (event.altKey || event.ctrlKey || event.metaKey || typing(event))) return;
    if ((ctrlEnter || event.key !== "Enter") && act(event.key, event.ctrlKey)) event.preventDefault();
  });

  // A form with data-confirm="question?" (deleting something) is sent only once confirmed.
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  window.provingGround = {
    isTextField, typing, activeForm, leaveField, act, fieldHomes, movers, actions, interceptors,
  };
})();
