// Evaluation pages with scoring forms (the campaign console, a trial): j/k move between the
// forms. Needs core/app.js, loaded before it. No build step.
(function () {
  "use strict";
  const pg = window.provingGround;

  // On a page of scoring forms (the evaluation console with several robots), j/k move the
  // focus to the next or previous form, so the other keys act on that robot's trial.
  function moveForm(step) {
    const all = Array.from(document.querySelectorAll("form[data-label-form]"));
    if (all.length < 2) return true;
    const current = all.indexOf(pg.activeForm());
    const form = all[Math.max(0, Math.min(all.length - 1, current + step))];
    const target = form.querySelector("input[name=outcome]:checked") ||
      form.querySelector("input:not([type=hidden]), select, textarea, button");
    if (target) target.focus();
    (form.closest("section") || form).scrollIntoView({ block: "nearest" });
    return true;
  }

  pg.movers.push(moveForm);
})();
