// On a phone the grid comes first: the upload form is a sheet over it, opened by the "Upload" button in the
// grid's head. From 900px wide the form stays beside the grid and the button is not shown (gallery.css), so
// the sheet's state has no effect there.

export class UploadSheet {
  constructor({ panel, toggle, closeButton, firstField }) {
    this.panel = panel;
    this.toggle = toggle;
    this.firstField = firstField;
    toggle.addEventListener("click", () => (this.isOpen() ? this.close() : this.open()));
    closeButton.addEventListener("click", () => this.close());
    // Escape closes it, as it would a dialog, and leaves the rest of the page's keys alone.
    panel.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !this.isOpen()) return;
      event.preventDefault();
      event.stopPropagation();
      this.close();
    });
  }

  // Open and shown as a sheet: on a wide screen the form is always there, and this is false.
  isOpen() {
    return this.panel.classList.contains("open") && getComputedStyle(this.toggle).display !== "none";
  }

  open() {
    this.panel.classList.add("open");
    this.toggle.setAttribute("aria-expanded", "true");
    this.firstField.focus();
  }

  // The focus goes back to the button that opened it, unless the caller moves it elsewhere.
  close({ focus = true } = {}) {
    this.panel.classList.remove("open");
    this.toggle.setAttribute("aria-expanded", "false");
    if (focus) this.toggle.focus();
  }
}
