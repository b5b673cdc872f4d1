// The new-protocol page (teleop/templates/teleop/protocol_new.html): condition target rows
// are added and removed; "required cameras" offers only the chosen task version's cameras;
// "shared with" leaves out the owning team. Without this script the page still works: three
// target rows, every camera (the service refuses one the version's embodiments lack).
(function () {
  "use strict";
  const form = document.querySelector("form[data-protocol-form]");
  if (!form) return;

  // --- Target rows ---
  const body = form.querySelector("#target-rows tbody");
  const template = form.querySelector("#target-row-template");
  const total = form.querySelector("input[name=targets-TOTAL_FORMS]");
  const addButton = form.querySelector("[data-add-target]");

  function showRemoveButtons() {
    const rows = body.querySelectorAll("tr[data-target-row]");
    rows.forEach((row) => {
      const button = row.querySelector("[data-remove-target]");
      button.hidden = rows.length < 2;
    });
  }

  addButton.hidden = false;
  addButton.addEventListener("click", function () {
    const index = Number(total.value);
    const html = template.innerHTML.replace(/__prefix__/g, String(index));
    body.insertAdjacentHTML("beforeend", html);
    total.value = String(index + 1);
    showRemoveButtons();
    const select = body.lastElementChild.querySelector("select");
    if (select) select.focus();
  });
  // A removed row leaves a gap in the numbering: the form set reads it as an empty row.
  body.addEventListener("click", function (event) {
    const button = event.target.closest("[data-remove-target]");
    if (!button) return;
    button.closest("tr").remove();
    showRemoveButtons();
    addButton.focus();
  });
  showRemoveButtons();

  // --- Cameras of the chosen task version ---
  const camerasByVersion = JSON.parse(document.getElementById("protocol-cameras").textContent);
  const version = form.querySelector("select[name=task_version]");
  const cameras = form.querySelector("fieldset[data-field=required_cameras]");

  function offerCameras() {
    if (!cameras) return;
    const offered = camerasByVersion[version.value];
    let shown = 0;
    cameras.querySelectorAll("label[data-choice]").forEach((label) => {
      const on = !offered || offered.includes(label.dataset.choice);
      label.hidden = !on;
      if (!on) label.querySelector("input").checked = false;
      if (on) shown += 1;
    });
    const none = cameras.querySelector("[data-none]");
    if (none) none.hidden = shown > 0;
  }
  if (version) { version.addEventListener("change", offerCameras); offerCameras(); }

  // --- "Shared with" without the owning team ---
  const team = form.querySelector("select[name=team]");
  const shared = form.querySelector("fieldset[data-field=shared_with]");
  function hideOwnTeam() {
    if (!team || !shared) return;
    shared.querySelectorAll("label[data-choice]").forEach((label) => {
      const own = label.dataset.choice === team.value;
      label.hidden = own;
      if (own) label.querySelector("input").checked = false;
    });
  }
  if (team) { team.addEventListener("change", hideOwnTeam); hideOwnTeam(); }
})();
