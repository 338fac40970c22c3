// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // Close the narrow menu after choosing a link.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".nav-narrow a");
    if (link) { link.closest("details").removeAttribute("open"); }
  });
})();
