// Small progressive enhancements; the pages work without JavaScript (and CSP forbids inline script).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-action=print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  document.querySelectorAll("form[data-busy-text]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) {
        // Disable after the submit has been dispatched, so the button's value is still sent.
        setTimeout(function () { button.disabled = true; button.textContent = form.dataset.busyText; }, 0);
      }
    });
  });
});
