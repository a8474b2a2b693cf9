// ctrledger ui: the time control. A slider over the log's positions (the list: @N) or over a
// container's versions (its page: vN). Moving it shows the point; letting go answers the page
// again at that point (the typed point is cleared: the slider wins; at its right end, the page
// shows now). Without scripts the form still works: type a point, or move the slider and press
// Show (the server reads the slider's value when no point is typed).
document.addEventListener("DOMContentLoaded", () => {
  for (const slider of document.querySelectorAll("input[type=range][data-prefix]")) {
    const out = document.getElementById(slider.id + "-out");
    const at = slider.form.querySelector("input[name=at]");
    const prefix = slider.dataset.prefix;
    slider.addEventListener("input", () => { out.textContent = prefix + slider.value; });
    slider.addEventListener("change", () => {
      const now = slider.value === slider.dataset.head;  // the right end: the page now
      at.value = now ? "" : prefix + slider.value;
      slider.disabled = true;  // the typed point carries it (a bookmarkable ?at=)
      slider.form.requestSubmit();
    });
    // A typed point is the one sent: the slider's value goes only when nothing is typed.
    slider.form.addEventListener("submit", () => { if (at.value.trim()) slider.disabled = true; });
  }
});
