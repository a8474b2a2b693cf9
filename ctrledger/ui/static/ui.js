// ctrledger ui: the time control. Moving the slider shows its position; letting go answers the
// list again at that log position (the typed point is cleared: the slider wins). Without
// scripts the form still works: type a point, or move the slider and press Show.
document.addEventListener("DOMContentLoaded", () => {
  const slider = document.getElementById("pos");
  if (!slider) return;
  const out = document.getElementById("pos-out");
  const at = document.getElementById("at");
  slider.addEventListener("input", () => { out.textContent = "@" + slider.value; });
  slider.addEventListener("change", () => {
    const now = slider.value === slider.dataset.head;  // the head of the log: the list now
    at.value = now ? "" : "@" + slider.value;
    slider.disabled = now;
    slider.form.requestSubmit();
  });
  // A typed point is the one sent: the slider's position goes only when nothing is typed.
  slider.form.addEventListener("submit", () => { if (at.value.trim()) slider.disabled = true; });
});
