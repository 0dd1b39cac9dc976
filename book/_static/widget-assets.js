// The widget HTML manager (vendor/html-manager/dist/embed-amd.js) looks for its fonts relative to the page
// that shows a widget, where they are not; they lie beside the manager itself, in this book's _static folder.
// Loaded between require.js and embed-amd.js (see nb_ipywidgets_js in _config.yml), it points both ways the
// manager's modules compute that folder (the folder of their RequireJS module URL, and the assets-path global) at
// the vendored copy. The modules are defined inside embed-amd.js, so these paths never make RequireJS fetch.
(function () {
  var dist = new URL("vendor/html-manager/dist/", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = dist;
  if (typeof require !== "undefined" && require.config) {
    var paths = {"@jupyter-widgets/html-manager/dist": dist.slice(0, -1)};
    ["base", "base7", "controls", "controls7", "html-manager"].forEach(function (name) {
      paths["@jupyter-widgets/" + name] = dist + name;
    });
    require.config({paths: paths});
  }
})();
