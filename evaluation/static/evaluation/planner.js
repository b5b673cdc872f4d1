// Authoring forms (benchmark, campaign planner): the cell grid's dots follow the ticked rows
// and columns; the planner shows the part of the design chosen (benchmark or grid) and asks
// /campaigns/plan for its figures as the form changes: the trials and duration first, then
// the power. Without JavaScript every part shows and "Preview the plan" gives the same
// figures from the server.
(function () {
  "use strict";

  function updateGrid(grid) {
    var columns = Array.prototype.map.call(
      grid.querySelectorAll("thead input[type=checkbox]"),
      function (box) { return box.checked; }
    );
    grid.querySelectorAll("tbody tr").forEach(function (row) {
      var rowBox = row.querySelector("th input[type=checkbox]");
      row.querySelectorAll("td[data-cell]").forEach(function (cell, i) {
        cell.textContent = rowBox && rowBox.checked && columns[i] ? "●" : "";
      });
    });
  }

  function showDesign(form) {
    var chosen = form.querySelector("input[name=design]:checked");
    if (!chosen) return;
    form.querySelectorAll("[data-design-part]").forEach(function (part) {
      part.hidden = part.getAttribute("data-design-part") !== chosen.value;
    });
  }

  function planner(form) {
    var url = form.getAttribute("data-plan-url");
    var panel = document.getElementById("plan-figures");
    if (!url || !panel) return function () {};
    var timer = null;
    var pending = null;
    function ask() {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (value, key) {
        if (key !== "csrfmiddlewaretoken" && key !== "name" && key !== "description") {
          params.append(key, value);
        }
      });
      if (pending) pending.abort();
      var controller = new AbortController();
      pending = controller;
      function load(query) {
        return fetch(url + "?" + query, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          signal: controller.signal,
        }).then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        });
      }
      function show(answer) {
        panel.innerHTML = answer.html; // rendered and escaped by the server's template
      }
      panel.setAttribute("aria-busy", "true");
      panel.classList.add("stale");
      // The trials and the duration at once; the power (exact tests, seconds the first
      // time for a difference) in a second request.
      load(params.toString() + "&power=later")
        .then(function (answer) {
          show(answer);
          panel.classList.remove("stale");
          if (!answer.figures || !answer.figures.power_pending) return null;
          return load(params.toString()).then(show);
        })
        .then(function () {
          panel.removeAttribute("aria-busy");
        })
        .catch(function (error) {
          if (error.name === "AbortError") return;
          panel.removeAttribute("aria-busy");
          panel.classList.remove("stale");
          panel.insertAdjacentHTML(
            "afterbegin",
            '<p class="flash error" role="alert">The figures could not be computed; use “Preview the plan”.</p>'
          );
        });
    }
    return function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 350);
    };
  }

  document.querySelectorAll("form[data-authoring-form]").forEach(function (form) {
    var grid = form.querySelector("[data-cell-grid]");
    var replan = planner(form);
    showDesign(form);
    if (grid) updateGrid(grid);
    form.addEventListener("change", function (event) {
      if (grid && grid.contains(event.target)) updateGrid(grid);
      if (event.target.name === "design") showDesign(form);
      replan();
    });
    form.addEventListener("input", function (event) {
      if (event.target.type === "number" || event.target.type === "text") replan();
    });
  });
})();
