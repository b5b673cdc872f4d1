// The success-criteria editor (docs/criteria.md, "The editor and the dry run").
//
// Progressive enhancement of the task form's JSON textarea (#id_criteria), which stays the
// one value the form submits: the editor writes it on every change, and reads it back when
// someone edits the JSON by hand. The kinds of automatic check and their parameters come
// from the server (#criteria-kinds, generated from the SDK's JSON Schema), so nothing about a
// kind is written here. Drafts are validated live by the server (the same rules that refuse
// a save), and a dry run evaluates the draft's checks on a recorded episode. No build step.
(function () {
  "use strict";

  const root = document.getElementById("criteria-editor");
  const textarea = document.getElementById("id_criteria");
  if (!root || !textarea) return;
  const form = root.closest("form");
  const kinds = JSON.parse(document.getElementById("criteria-kinds").textContent);
  const kindByType = Object.fromEntries(kinds.map((kind) => [kind.type, kind]));
  const status = document.getElementById("criteria-status");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const SCHEMA = "pg-criteria/1";

  let model = null; // the draft as an object; keys the editor does not know are kept
  let uid = 0;

  // --- small DOM helpers -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node && key !== "list") node[key] = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }

  function nextId(prefix) { uid += 1; return `ce-${prefix}-${uid}`; }

  // A labelled field: the label names the input, `path` ties it to the server's problems.
  function field(labelText, input, path, help) {
    input.id = input.id || nextId("f");
    input.dataset.path = path;
    const helpNode = help ? el("span", { class: "muted small help", text: help }) : null;
    return el("div", { class: "ce-field" }, el("label", { for: input.id, text: labelText }), input, helpNode);
  }

  function button(text, label, onclick, cls) {
    return el("button", { type: "button", class: cls || "small", "aria-label": label, text, onclick });
  }

  // --- the draft and the textarea --------------------------------------------------------

  function blank() {
    return { schema: SCHEMA, success: { description: "" }, stages: [], failure_codes: [], checks: [] };
  }

  function list(name) {
    if (!Array.isArray(model[name])) model[name] = [];
    return model[name];
  }

  function writeJSON() {
    textarea.value = JSON.stringify(model, null, 2);
    scheduleValidation();
  }

  // Someone typed in the JSON: take it when it parses to an object, else say why not.
  function readJSON() {
    const text = textarea.value.trim();
    if (!text) { model = blank(); render(); scheduleValidation(); return; }
    let parsed;
    try { parsed = JSON.parse(text); } catch (error) {
      root.classList.add("stale");
      showProblems([{ path: "", message: `The JSON does not parse (${error.message}); the editor shows the last JSON that did.` }]);
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      root.classList.add("stale");
      showProblems([{ path: "", message: "The criteria must be a JSON object." }]);
      return;
    }
    root.classList.remove("stale");
    model = parsed;
    render();
    scheduleValidation();
  }

  function changed() { render(); writeJSON(); }

  // --- rendering -------------------------------------------------------------------------

  function render() {
    const focusedPath = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.path;
    root.replaceChildren(successSection(), stagesSection(), failureSection(), checksSection());
    if (focusedPath) {
      const again = root.querySelector(`[data-path="${CSS.escape(focusedPath)}"]`);
      if (again) again.focus();
    }
    refreshWeights();
    if (lastProblems) placeProblems(lastProblems);
  }

  function successSection() {
    if (!model.success || typeof model.success !== "object") model.success = { description: "" };
    const success = model.success;
    const description = el("textarea", { rows: 2, value: success.description || "",
      oninput: (e) => { success.description = e.target.value; writeJSON(); } });
    const check = el("select", { onchange: (e) => {
      if (e.target.value) success.check = e.target.value; else delete success.check;
      writeJSON();
    } });
    fillCheckChoices(check);
    return el("fieldset", { class: "ce-section" }, el("legend", { text: "Success" }),
      field("What a judge looks for", description, "/success/description",
        "The binary criterion, in words an operator can judge by."),
      field("Decided by", check, "/success/check",
        "A human, or an automatic check whose pass or fail decides success."));
  }

  function fillCheckChoices(select) {
    const current = model.success && model.success.check;
    const ids = list("checks").map((c) => c && c.id).filter(Boolean);
    select.replaceChildren(el("option", { value: "", text: "a human judge" }),
      ...ids.map((id) => el("option", { value: id, text: `check ${id}`, selected: id === current })));
    if (current && !ids.includes(current)) select.append(el("option", { value: current, text: `check ${current} (missing)`, selected: true }));
  }

  // Up, down and remove buttons for item `i` of `items`.
  function moveButtons(items, i, noun) {
    const swap = (j) => { [items[i], items[j]] = [items[j], items[i]]; changed(); };
    return el("div", { class: "ce-moves" },
      button("↑", `Move ${noun} ${i + 1} up`, () => swap(i - 1), "small" + (i === 0 ? " invisible" : "")),
      button("↓", `Move ${noun} ${i + 1} down`, () => swap(i + 1), "small" + (i === items.length - 1 ? " invisible" : "")),
      button("Remove", `Remove ${noun} ${i + 1}`, () => { items.splice(i, 1); changed(); }, "small danger"));
  }

  function textInput(object, key, attrs) {
    return el("input", Object.assign({ type: "text", value: object[key] === undefined ? "" : String(object[key]),
      oninput: (e) => { object[key] = e.target.value; writeJSON(); } }, attrs || {}));
  }

  function stagesSection() {
    const stages = list("stages");
    const rows = stages.map((stage, i) => {
      const weight = el("input", { type: "number", step: "any", min: 0, max: 1, class: "weight",
        value: stage.weight === undefined ? "" : stage.weight,
        oninput: (e) => { setNumber(stage, "weight", e.target.value, true); refreshWeights(); writeJSON(); } });
      const id = textInput(stage, "id", { class: "slug", oninput: (e) => { stage.id = e.target.value; refreshStageChoices(); writeJSON(); } });
      return el("div", { class: "ce-row", "data-path": `/stages/${i}` },
        el("span", { class: "ce-n", text: `${i + 1}.` }),
        field("Id", id, `/stages/${i}/id`),
        field("Description", textInput(stage, "description", { class: "desc" }), `/stages/${i}/description`),
        field("Weight", weight, `/stages/${i}/weight`),
        moveButtons(stages, i, "stage"));
    });
    return el("fieldset", { class: "ce-section", "data-path": "/stages" },
      el("legend", { text: "Stages (partial credit, in order)" }),
      el("p", { class: "muted small", text: "Each stage reached earns its weight; the weights sum to 1. Leave empty for no partial credit." }),
      ...rows,
      el("p", { class: "ce-sum small", id: "ce-weight-sum" }),
      el("div", { class: "actions" },
        button("Add stage", "Add a stage", () => {
          stages.push({ id: `stage-${stages.length + 1}`, description: "", weight: stages.length ? 0 : 1 });
          changed();
        }),
        stages.length > 1 ? button("Split weights evenly", "Give every stage the same weight", () => {
          const share = Math.round(1e6 / stages.length) / 1e6;
          stages.forEach((s, i) => { s.weight = i === stages.length - 1 ? Math.round((1 - share * (stages.length - 1)) * 1e6) / 1e6 : share; });
          changed();
        }) : null));
  }

  function refreshWeights() {
    const out = document.getElementById("ce-weight-sum");
    if (!out) return;
    const stages = list("stages");
    if (!stages.length) { out.textContent = ""; return; }
    const sum = stages.reduce((total, s) => total + (typeof s.weight === "number" ? s.weight : 0), 0);
    const ok = Math.abs(sum - 1) <= 1e-6;
    out.textContent = `Weights sum to ${+sum.toFixed(6)}${ok ? "" : " (they must sum to 1)"}`;
    out.classList.toggle("bad", !ok);
  }

  function failureSection() {
    const codes = list("failure_codes");
    const rows = codes.map((code, i) => el("div", { class: "ce-row", "data-path": `/failure_codes/${i}` },
      field("Code", textInput(code, "code", { class: "slug" }), `/failure_codes/${i}/code`),
      field("Description", textInput(code, "description", { class: "desc" }), `/failure_codes/${i}/description`),
      moveButtons(codes, i, "failure code")));
    return el("fieldset", { class: "ce-section", "data-path": "/failure_codes" },
      el("legend", { text: "Failure codes" }),
      el("p", { class: "muted small", text: "What a labeler may name when an attempt fails." }),
      ...rows,
      el("div", { class: "actions" }, button("Add failure code", "Add a failure code", () => {
        codes.push({ code: "", description: "" });
        changed();
      })));
  }

  function setNumber(object, key, text, keepEmpty) {
    if (text === "" || text === null) { if (keepEmpty) object[key] = null; else delete object[key]; return; }
    const number = Number(text);
    object[key] = Number.isFinite(number) ? number : text;
  }

  function parameterInput(check, parameter, path) {
    const value = check[parameter.name];
    const set = (v) => { if (v === "") delete check[parameter.name]; else check[parameter.name] = v; writeJSON(); };
    if (parameter.input === "choice") {
      const select = el("select", { onchange: (e) => set(e.target.value) },
        el("option", { value: "", text: parameter.required ? "choose…" : "(none)" }),
        ...parameter.options.map((o) => el("option", { value: o, text: o, selected: o === value })));
      return select;
    }
    if (parameter.input === "number" || parameter.input === "integer") {
      return el("input", { type: "number", step: parameter.input === "integer" ? 1 : "any",
        min: parameter.minimum ?? parameter.exclusiveMinimum, max: parameter.maximum,
        value: value === undefined || value === null ? "" : value,
        oninput: (e) => { setNumber(check, parameter.name, e.target.value, false); writeJSON(); } });
    }
    if (parameter.input === "list") {
      return el("input", { type: "text", value: Array.isArray(value) ? value.join(", ") : (value || ""),
        placeholder: "comma-separated",
        oninput: (e) => {
          const items = e.target.value.split(",").map((s) => s.trim()).filter(Boolean);
          if (items.length) check[parameter.name] = items; else delete check[parameter.name];
          writeJSON();
        } });
    }
    const attrs = { type: "text", value: value === undefined ? "" : String(value), oninput: (e) => set(e.target.value) };
    if (parameter.refers_to === "stages") attrs.list = "ce-stage-ids";
    return el("input", attrs);
  }

  function refreshStageChoices() {
    let datalist = document.getElementById("ce-stage-ids");
    if (!datalist) { datalist = el("datalist", { id: "ce-stage-ids" }); root.after(datalist); }
    datalist.replaceChildren(...list("stages").map((s) => el("option", { value: s.id || "" })));
  }

  function checksSection() {
    const checks = list("checks");
    const cards = checks.map((check, i) => {
      const kind = kindByType[check.type];
      const typeSelect = el("select", { onchange: (e) => {
        const next = kindByType[e.target.value];
        const keep = new Set(["id", "type", "description", ...(next ? next.parameters.map((p) => p.name) : [])]);
        for (const key of Object.keys(check)) if (!keep.has(key)) delete check[key];
        check.type = e.target.value;
        changed();
      } },
      ...(kind ? [] : [el("option", { value: check.type || "", text: `${check.type || "choose…"} (unknown)`, selected: true })]),
      ...kinds.map((k) => el("option", { value: k.type, text: k.label, selected: k.type === check.type })));
      const id = textInput(check, "id", { class: "slug", oninput: (e) => {
        check.id = e.target.value;
        fillCheckChoices(root.querySelector('[data-path="/success/check"]'));
        writeJSON();
      } });
      const description = el("input", { type: "text", value: check.description || "",
        oninput: (e) => { if (e.target.value) check.description = e.target.value; else delete check.description; writeJSON(); } });
      const parameters = kind ? kind.parameters.map((p) => field(
        p.label + (p.required ? "" : " (optional)"), parameterInput(check, p, `/checks/${i}/${p.name}`),
        `/checks/${i}/${p.name}`, p.help)) : [];
      return el("div", { class: "ce-check", "data-path": `/checks/${i}` },
        el("div", { class: "ce-row" },
          el("span", { class: "ce-n", text: `${i + 1}.` }),
          field("Kind", typeSelect, `/checks/${i}/type`),
          field("Id", id, `/checks/${i}/id`),
          moveButtons(checks, i, "check")),
        kind ? el("p", { class: "muted small", text: kind.description }) : null,
        el("div", { class: "ce-params" }, ...parameters,
          field("Description (optional)", description, `/checks/${i}/description`)));
    });
    const section = el("fieldset", { class: "ce-section", "data-path": "/checks" },
      el("legend", { text: "Automatic checks" }),
      el("p", { class: "muted small", text: "Run on every recorded episode; each passes, fails or is not evaluable." }),
      ...cards,
      el("div", { class: "actions" }, button("Add check", "Add an automatic check", () => {
        const first = kinds[0];
        checks.push({ id: `check-${checks.length + 1}`, type: first.type });
        changed();
      })));
    queueMicrotask(refreshStageChoices);
    return section;
  }

  // --- live validation -------------------------------------------------------------------

  let timer = null;
  let sequence = 0;
  let lastProblems = null;

  function scheduleValidation() {
    clearTimeout(timer);
    timer = setTimeout(validate, 300);
  }

  async function validate() {
    const mine = ++sequence;
    let answer;
    try {
      const response = await fetch(root.dataset.validateUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ criteria: model }),
      });
      answer = await response.json();
    } catch (error) {
      if (mine === sequence) status.textContent = "Could not check the draft (offline?); saving will.";
      return;
    }
    if (mine !== sequence) return; // a later draft was sent since
    root.classList.remove("stale");
    showProblems(answer.problems || []);
  }

  function showProblems(problems) {
    lastProblems = problems;
    placeProblems(problems);
    status.replaceChildren();
    status.className = "criteria-status " + (problems.length ? "bad" : "ok");
    if (!problems.length) { status.textContent = "✓ The criteria are valid."; return; }
    status.append(el("p", { text: `${problems.length} problem${problems.length > 1 ? "s" : ""}:` }),
      el("ul", { class: "errorlist" }, ...problems.map((p) => el("li", { text: p.path ? `${p.path}: ${p.message}` : p.message }))));
  }

  // Each problem beside the field its JSON pointer names, or the nearest enclosing part.
  function placeProblems(problems) {
    root.querySelectorAll(".ce-problems").forEach((node) => node.remove());
    root.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
    for (const problem of problems) {
      let path = problem.path || "";
      let target = null;
      while (path && !(target = root.querySelector(`[data-path="${CSS.escape(path)}"]`))) {
        path = path.slice(0, path.lastIndexOf("/"));
      }
      if (!target) continue;
      const holder = target.matches("input, select, textarea") ? target.closest(".ce-field") : target;
      if (target.matches("input, select, textarea")) target.setAttribute("aria-invalid", "true");
      let ul = holder.querySelector(":scope > .ce-problems");
      if (!ul) { ul = el("ul", { class: "errorlist ce-problems" }); holder.append(ul); }
      ul.append(el("li", { text: problem.message }));
    }
  }

  // --- dry run ---------------------------------------------------------------------------

  const dryRun = document.getElementById("dry-run");
  const episodeSelect = document.getElementById("dry-run-episode");
  const results = document.getElementById("dry-run-results");

  function draftTeam() {
    const select = form.querySelector("select[name=team]");
    return select ? select.value : root.dataset.team || "";
  }

  function draftEmbodiments() {
    return [...form.querySelectorAll("input[name=allowed_embodiments]:checked")].map((box) => box.value);
  }

  async function loadEpisodes() {
    const query = new URLSearchParams();
    if (draftTeam()) query.append("team", draftTeam());
    draftEmbodiments().forEach((id) => query.append("embodiment", id));
    const previous = episodeSelect.value;
    let answer;
    try {
      const response = await fetch(`${root.dataset.episodesUrl}?${query}`, { credentials: "same-origin" });
      answer = await response.json();
    } catch (error) {
      episodeSelect.replaceChildren(el("option", { value: "", text: "Could not load episodes" }));
      return;
    }
    const episodes = answer.episodes || [];
    episodeSelect.replaceChildren(...(episodes.length
      ? episodes.map((e) => el("option", { value: e.id, text: e.label, selected: e.id === previous }))
      : [el("option", { value: "", text: "No recorded episode of this team and these embodiments" })]));
  }

  function cell(text, cls) { return el("td", { class: cls, text }); }

  function formatValue(value) {
    if (value === null || value === undefined) return "—";
    return Math.abs(value) >= 1e4 || Number.isInteger(value) ? String(value) : String(+value.toPrecision(6));
  }

  async function runDryRun() {
    if (!episodeSelect.value) { results.replaceChildren(el("p", { class: "errorlist", text: "Choose a recorded episode first." })); return; }
    results.replaceChildren(el("p", { class: "muted", text: "Evaluating…" }));
    let response, answer;
    try {
      response = await fetch(root.dataset.dryRunUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ criteria: model, episode: episodeSelect.value, embodiments: draftEmbodiments() }),
      });
      answer = await response.json();
    } catch (error) {
      results.replaceChildren(el("p", { class: "errorlist", text: "The dry run did not answer; try again." }));
      return;
    }
    if (!response.ok) {
      results.replaceChildren(el("ul", { class: "errorlist" },
        ...(answer.problems || []).map((p) => el("li", { text: p.message }))));
      return;
    }
    const rows = answer.results.map((r) => el("tr", { "data-check": r.check_id },
      el("td", {}, el("code", { text: r.check_id })), cell(r.type.replaceAll("_", " ")),
      el("td", {}, el("span", { class: `badge ${r.status}`, text: r.status.replace("_", " ") })),
      cell(formatValue(r.value), "num"), cell(r.message, "wrap small")));
    const decided = answer.success === null ? "left to the human judge" : answer.success ? "success" : "failure";
    results.replaceChildren(
      answer.results.length
        ? el("table", { class: "dry-run-table" },
          el("thead", {}, el("tr", {}, ...["Check", "Kind", "Verdict", "Measured", "Message"].map((h) => el("th", { scope: "col", text: h, class: h === "Measured" ? "num" : null })))),
          el("tbody", {}, ...rows))
        : el("p", { class: "muted", text: "The draft has no automatic checks." }),
      el("p", { class: "small", text: `Success on this episode: ${decided}.` }));
  }

  // --- start -----------------------------------------------------------------------------

  if (textarea.value.trim()) readJSON();
  else { model = blank(); render(); textarea.value = JSON.stringify(model, null, 2); } // no problems shown before any typing
  textarea.addEventListener("input", readJSON);
  root.hidden = false;
  if (dryRun && root.dataset.dryRunUrl) {
    dryRun.hidden = false;
    loadEpisodes();
    form.addEventListener("change", (event) => {
      if (event.target.name === "team" || event.target.name === "allowed_embodiments") loadEpisodes();
    });
    document.getElementById("dry-run-button").addEventListener("click", runDryRun);
  }
})();
