// Series pages: poll the API while a job runs (so a reload loses nothing), and the slice viewer.
document.addEventListener("DOMContentLoaded", function () {
  var page = document.getElementById("series-page");
  if (!page) { return; }

  var status = page.dataset.status;
  if (status === "queued" || status === "running") {
    var bar = document.getElementById("series-progress");
    var text = document.getElementById("progress-text");
    var label = document.getElementById("progress-status");
    var eta = document.getElementById("progress-eta");
    var remove = document.getElementById("series-delete");
    var poll = function () {
      fetch(page.dataset.api, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (job) {
          if (job.status === "done" || job.status === "failed") { window.location.reload(); return; }
          bar.max = job.progress[1]; bar.value = job.progress[0];
          // A PACS series has no slice count until the worker has retrieved it.
          text.textContent = job.progress[1] ? job.progress[0] + " / " + job.progress[1] + " slices"
                                             : "retrieving the images from the PACS";
          label.textContent = job.status.charAt(0).toUpperCase() + job.status.slice(1);
          eta.textContent = job.eta_seconds != null ? "(about " + Math.ceil(job.eta_seconds) + " s left)" : "";
          // A running job cannot be deleted (the server refuses): offer it only while queued.
          if (remove) { remove.parentNode.hidden = job.status === "running"; }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 500);
    return;
  }

  var viewer = document.getElementById("viewer");
  if (!viewer) { return; }
  var slider = document.getElementById("slice-slider");
  var image = document.getElementById("slice-image");
  var number = document.getElementById("slice-number");
  var windowSelect = document.getElementById("window-select");
  var overlay = document.getElementById("overlay-toggle");
  var compare = document.getElementById("compare-toggle");  // only on a corrected series
  var total = parseInt(viewer.dataset.slices, 10);
  var base = viewer.dataset.src.replace(/0\.png$/, "");

  var show = function (index) {
    index = Math.max(0, Math.min(total - 1, index));
    slider.value = index;
    number.textContent = index + 1;
    image.dataset.slice = index;
    image.src = base + index + ".png?window=" + encodeURIComponent(windowSelect.value) + "&overlay=" + (overlay.checked ? 1 : 0) +
      (compare && compare.checked ? "&version=0" : "") +
      // Slices are cached: a corrected version is a new URL.
      (viewer.dataset.version !== "0" ? "&v=" + viewer.dataset.version : "");
    viewer.dispatchEvent(new CustomEvent("slicechange", {detail: {index: index}}));  // the editor follows
  };
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
  windowSelect.addEventListener("change", function () { show(parseInt(slider.value, 10)); });
  overlay.addEventListener("change", function () { show(parseInt(slider.value, 10)); });
  if (compare) { compare.addEventListener("change", function () { show(parseInt(slider.value, 10)); }); }
  image.addEventListener("wheel", function (event) {
    event.preventDefault();
    show(parseInt(slider.value, 10) + (event.deltaY > 0 ? 1 : -1));
  }, {passive: false});
  document.querySelectorAll(".lesion-jump").forEach(function (button) {
    button.addEventListener("click", function () {
      show(parseInt(button.dataset.slice, 10));
      viewer.scrollIntoView({behavior: "smooth", block: "start"});
    });
  });
  show(0);
});
