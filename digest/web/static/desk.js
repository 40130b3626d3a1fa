/* The editors' desk: fit the e-mail frames to their content, reload the preview when a template or content file
   changes (the server counts changes; this page asks for the count every second), and reload once a send the page
   shows as under way is done. */
(function () {
  "use strict";

  function fit(frame) {
    try {
      var doc = frame.contentDocument;
      if (doc && doc.documentElement) {
        frame.style.height = doc.documentElement.scrollHeight + "px";
      }
    } catch (err) {
      /* not readable: keep the height from the style sheet */
    }
  }

  document.querySelectorAll("iframe.email").forEach(function (frame) {
    frame.addEventListener("load", function () { fit(frame); });
    fit(frame);
  });

  var sending = document.getElementById("sending-poll");
  if (sending) {
    var sendingUrl = sending.getAttribute("data-url");
    var askSending = function () {
      fetch(sendingUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (data && data.sendes === false) {
            window.location.reload();
            return;
          }
          var words = document.getElementById("sendes");
          if (data && data.tekst && words && words.textContent !== data.tekst) {
            words.textContent = data.tekst;
          }
          window.setTimeout(askSending, 1000);
        })
        .catch(function () { window.setTimeout(askSending, 3000); });
    };
    window.setTimeout(askSending, 1000);
  }

  var live = document.getElementById("livereload");
  if (!live) {
    return;
  }
  var url = live.getAttribute("data-url");
  var version = live.getAttribute("data-version");

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && String(data.versjon) !== version) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
}());
