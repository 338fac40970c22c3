// Streams each chosen file as the raw body of POST /upload (like the API and the CLI do),
// showing progress from XHR upload events and the server's answer (or refusal) per file.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var list = document.getElementById("upload-list");

  function row(file) {
    var li = document.createElement("li");
    var label = document.createElement("div");
    label.textContent = file.name + " (" + Math.round(file.size / 1024) + " KiB)";
    var bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    bar.setAttribute("aria-label", "Upload progress of " + file.name);
    var status = document.createElement("div");
    status.className = "upload-status";
    status.textContent = "waiting";
    li.append(label, bar, status);
    list.append(li);
    return { li: li, bar: bar, status: status };
  }

  function send(file, ui, fields) {
    return new Promise(function (resolve) {
      var params = new URLSearchParams({ filename: file.name });
      Object.keys(fields).forEach(function (k) { if (fields[k]) { params.set(k, fields[k]); } });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/upload?" + params.toString());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          ui.bar.value = Math.round((e.loaded / e.total) * 100);
          ui.status.textContent = "sending… " + ui.bar.value + "%";
        }
      });
      xhr.upload.addEventListener("load", function () { ui.status.textContent = "checking the file…"; });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
        ui.status.textContent = "";
        if (xhr.status === 200 || xhr.status === 201) {
          ui.bar.value = 100;
          var link = document.createElement("a");
          link.href = body.url;
          link.textContent = body.name + " " + body.version;
          ui.status.append(document.createTextNode(xhr.status === 201 ? "Uploaded as " : "Already stored as "), link,
            document.createTextNode(" (" + body.format + ", stage " + body.stage + ")"));
          ui.li.className = "done";
        } else if (body && body.error) {
          var strong = document.createElement("strong");
          strong.textContent = "Refused: " + body.error.message;
          ui.status.append(strong);
          if (body.error.hint) { ui.status.append(document.createTextNode(" — " + body.error.hint)); }
          ui.li.className = "failed";
          ui.status.setAttribute("role", "alert");
        } else {
          ui.status.textContent = "Refused (HTTP " + xhr.status + "): your session may have ended; reload the page and sign in.";
          ui.li.className = "failed";
          ui.status.setAttribute("role", "alert");
        }
        resolve();
      });
      xhr.addEventListener("error", function () {
        ui.status.textContent = "The connection failed; try again.";
        ui.status.setAttribute("role", "alert");
        resolve();
      });
      ui.status.textContent = "sending…";
      xhr.send(file);
    });
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var files = Array.from(form.querySelector("input[type=file]").files);
    var fields = {
      justification: form.elements.justification.value,
      provenance: form.elements.provenance.value,
      package: form.elements.package.value,
      version: form.elements.version.value
    };
    var button = document.getElementById("up-submit");
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    for (var i = 0; i < files.length; i++) {
      await send(files[i], row(files[i]), fields);
    }
    button.removeAttribute("aria-busy");
    button.disabled = false;
    form.querySelector("input[type=file]").value = "";
  });
})();
