// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Filter forms: leave empty fields out of the request, so the pushed URL stays short.
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt.hasAttribute("data-drop-empty")) { return; }
    var params = event.detail.parameters;
    Object.keys(params).forEach(function (key) {
      if (params[key] === "") { delete params[key]; }
    });
  });
  // Close the narrow menu after choosing a link.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".nav-narrow a");
    if (link) { link.closest("details").removeAttribute("open"); }
  });
})();
