// Renders the dashboard's two charts from the JSON the server put in #chart-data.
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    // Colour-blind-safe palette (Okabe-Ito), dark enough on white.
    var palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    var activity = document.getElementById("chart-activity");
    if (activity) {
      var stages = Object.keys(data.activity.series);
      new Chart(activity, {
        type: "line",
        data: {
          labels: data.activity.labels.map(function (d) { return d.slice(5); }),
          datasets: stages.map(function (stage, i) {
            return { label: stage, data: data.activity.series[stage], borderColor: palette[i % palette.length],
                     backgroundColor: palette[i % palette.length], tension: 0.2, pointRadius: 0, borderWidth: 2 };
          })
        },
        options: { plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    }
    var lead = document.getElementById("chart-lead");
    if (lead) {
      new Chart(lead, {
        type: "bar",
        data: {
          labels: data.lead.labels.map(function (d) { return d.slice(5); }),
          datasets: [
            { label: "median (h)", data: data.lead.median, backgroundColor: "#0072B2" },
            { label: "90th percentile (h)", data: data.lead.p90, backgroundColor: "#E69F00" }
          ]
        },
        options: { plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true } } }
      });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
