// The dashboard's trend chart (Chart.js from npm, served by the console). The data comes from a JSON
// block in the page (<script type="application/json">, never executed), so no inline script is needed.
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("trend-data");
    var canvas = document.getElementById("trend-chart");
    if (!data || !canvas || typeof window.Chart === "undefined") return;
    var trend = JSON.parse(data.textContent);
    var lang = document.documentElement.lang;
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: trend.labels,
        datasets: [
          { label: lang === "en" ? "Share productive (%)" : "Bagian produktif (%)", data: trend.share, borderColor: "#0b4f8a", backgroundColor: "#0b4f8a", tension: 0.2 },
          { label: (lang === "en" ? "Target " : "Target ") + trend.target + "%", data: trend.labels.map(function () { return trend.target; }), borderColor: "#8a1c1c", borderDash: [6, 4], pointRadius: 0 }
        ]
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { min: 0, max: 100, title: { display: true, text: "%" } } } }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
