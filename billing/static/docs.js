// The API docs page: Swagger UI over the service's own OpenAPI document. A file of its
// own, not an inline script, so that the page's Content-Security-Policy allows scripts
// from the service alone.
"use strict";

// What Swagger UI draws, made reachable and named: a code example that scrolls can be
// scrolled from the keyboard, and the servers' list says what it is.
function labelWhatSwaggerDrew(root) {
  root.querySelectorAll("pre.microlight:not([tabindex])").forEach(function (code) {
    code.setAttribute("tabindex", "0");
  });
  root.querySelectorAll(".servers select:not([aria-label])").forEach(function (select) {
    select.setAttribute("aria-label", "Server");
  });
}

window.addEventListener("load", function () {
  const container = document.getElementById("swagger-ui-container");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui-container",
  });
  new MutationObserver(function () {
    labelWhatSwaggerDrew(container);
  }).observe(container, { childList: true, subtree: true });
});
