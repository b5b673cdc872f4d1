// Leaderboard page: macro success and its 95% interval per policy, drawn with the vendored
// Chart.js (static vendor/chart.umd.min.js). The numbers come from the page's
// <script type="application/json" id="leaderboard-chart-data"> (Django's json_script; `bar`
// in percent, rounded to 0.1) and the tooltips' text from "leaderboard-chart-numbers", written
// as the table writes them. Like the table, the chart reads rates as fractions from 0 to 1.
// The table stays the source of truth, so without JavaScript the figure simply stays hidden.
(function () {
  "use strict";

  function draw() {
    const source = document.getElementById("leaderboard-chart-data");
    const figure = document.querySelector("[data-leaderboard-chart]");
    if (!source || !figure || typeof window.Chart === "undefined") return;
    const canvas = figure.querySelector("canvas");
    const box = figure.querySelector(".chart-box");
    const rows = JSON.parse(source.textContent);
    const written = document.getElementById("leaderboard-chart-numbers");
    const numbers = written ? JSON.parse(written.textContent) : [];
    if (!canvas || !box || !rows.length) return;

    const style = getComputedStyle(document.documentElement);
    const color = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    const accent = color("--accent", "#2557a7");
    const muted = color("--muted", "#5d6773");
    const line = color("--line", "#d9dee4");
    const text = (i, key) => (numbers[i] && numbers[i][key]) || "–";

    const labels = rows.map((r) => `${r.rank ?? "–"}. ${r.policy} ${r.version}`);
    const bar = (r) => r.bar || {};
    const fraction = (v) => (v === null || v === undefined ? null : v / 100);
    const intervals = rows.map((r) =>
      fraction(bar(r).low) === null ? null : [fraction(bar(r).low), fraction(bar(r).high)]
    );
    // Plain values on the category axis: Chart.js skips a null one (a policy with no valid
    // trial has no estimate), where a null inside {x, y} points would break its parser.
    const points = rows.map((r) => fraction(bar(r).point));

    // One row per policy, tall enough to read; the box's height is set through the CSSOM,
    // which the page's Content-Security-Policy allows (no style attribute is written).
    box.style.height = `${Math.max(120, rows.length * 34 + 64)}px`;
    figure.hidden = false;

    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels,
        datasets: [
          {
            label: "95% interval",
            data: intervals,
            backgroundColor: "rgba(37, 87, 167, 0.30)",
            borderColor: "rgba(37, 87, 167, 0.55)",
            borderWidth: 1,
            borderSkipped: false,
            borderRadius: 3,
            barPercentage: 0.5,
            categoryPercentage: 1,
            grouped: false,
            order: 2,
          },
          {
            type: "line",
            label: "Macro success",
            data: points,
            indexAxis: "y",
            showLine: false,
            pointStyle: "circle",
            pointRadius: 5,
            pointHoverRadius: 7,
            pointBackgroundColor: accent,
            pointBorderColor: "#fff",
            pointBorderWidth: 1.5,
            order: 1,
          },
        ],
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", axis: "y", intersect: false },
        scales: {
          x: {
            type: "linear",
            min: 0,
            max: 1,
            ticks: { stepSize: 0.1, color: muted, callback: (v) => Number(v).toFixed(1) },
            grid: { color: line },
            title: { display: true, text: "Macro success (95% interval)", color: muted },
          },
          y: {
            type: "category",
            ticks: { color: "#1d232b", autoSkip: false },
            grid: { display: false },
          },
        },
        plugins: {
          legend: { position: "bottom", labels: { color: muted, usePointStyle: true } },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? items[0].label : ""),
              label: (item) => {
                const i = item.dataIndex;
                if (item.datasetIndex === 0) {
                  return `95% interval: ${text(i, "low")} to ${text(i, "high")}`;
                }
                return `Macro success: ${text(i, "macro")} (n = ${rows[i].trials})`;
              },
            },
          },
        },
      },
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
