// Gardien console: the only script. Pages work without it. After a refused form it moves the
// focus to the error summary, and names each error by its field's label rather than its path.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.getElementById("error-summary");
  if (!summary) {
    return;
  }
  for (const link of summary.querySelectorAll('a[href^="#f-"]')) {
    const field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) {
      continue;
    }
    const label = field.tagName === "FIELDSET"
      ? field.querySelector("legend")
      : document.querySelector(`label[for="${field.id}"]`);
    if (label) {
      link.textContent = label.textContent.replace("*", "").trim();
    }
  }
  summary.focus();
});
