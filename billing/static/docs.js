// The API docs page: Swagger UI over the service's own OpenAPI document. A file of its
// own, not an inline script, so that the page's Content-Security-Policy allows scripts
// from the service alone.
"use strict";

window.addEventListener("load", function () {
  const container = document.getElementById("swagger-ui-container");
  window.ui = SwaggerUIBundle({
    url: container.dataset.specUrl,
    dom_id: "#swagger-ui-container",
  });
});
