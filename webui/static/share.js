// A share's upload form: each chosen or dropped file goes as the raw body of a PUT (never a multipart
// form, which a server spools to a plaintext temporary file), one after the other, with its progress.
// The CSRF token goes in a header; the page reloads once every file is sent, to show them.
"use strict";

(function () {
  const form = document.getElementById("upload");
  if (!form) {
    return;
  }
  const input = document.getElementById("files");
  const list = document.getElementById("progress");

  function row(file) {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = file.name + " ";
    const bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    const state = document.createElement("span");
    state.className = "state";
    item.append(label, bar, state);
    list.append(item);
    return { bar, state, item };
  }

  function send(file) {
    const shown = row(file);
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("PUT", form.dataset.target + "?name=" + encodeURIComponent(file.name));
      request.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) {
          shown.bar.max = event.total;
          shown.bar.value = event.loaded;
        }
      });
      request.addEventListener("load", () => {
        let message = "";
        try {
          const body = JSON.parse(request.responseText);
          message = body.error ? body.error.message : "";
        } catch (ignored) {
          message = "";
        }
        const ok = request.status === 201;
        shown.bar.value = shown.bar.max;
        shown.state.textContent = " " + (ok ? form.dataset.done : form.dataset.failed + (message ? " : " + message : ""));
        shown.item.className = ok ? "sent" : "bad";
        resolve(ok);
      });
      request.addEventListener("error", () => {
        shown.state.textContent = " " + form.dataset.failed;
        shown.item.className = "bad";
        resolve(false);
      });
      request.send(file);
    });
  }

  async function sendAll(files) {
    let allSent = true;
    for (const file of files) {
      allSent = (await send(file)) && allSent;
    }
    if (allSent) {
      window.location.reload();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendAll(Array.from(input.files));
  });
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    form.classList.add("dragging");
  });
  form.addEventListener("dragleave", () => form.classList.remove("dragging"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dragging");
    sendAll(Array.from(event.dataTransfer.files));
  });
})();
