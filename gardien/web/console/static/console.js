// Gardien console: the only script. Pages work without it; it moves focus to a form's errors so
// that keyboard and screen-reader users land on them after a refused submission.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
});
