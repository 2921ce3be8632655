// Ticketing storefront: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function clock(seconds) {
    var s = Math.max(0, seconds);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h > 0 ? h + ":" + pad(m) : String(m)) + ":" + pad(r);
  }

  // The order page's countdown: ticks from the time the server rendered, so a wrong
  // clock on this device does not matter; at zero the payment form gives way.
  function countdown(el) {
    var left = parseInt(el.getAttribute("data-seconds-left"), 10);
    if (isNaN(left)) return;
    var started = Date.now();
    var face = el.querySelector("[data-countdown-clock]");
    var section = el.closest("section") || document;
    var announce = section.querySelector("[data-countdown-announce]");
    var said = {};
    function say(key, text) { if (announce && !said[key]) { said[key] = true; announce.textContent = text; } }
    function tick() {
      var remaining = left - Math.floor((Date.now() - started) / 1000);
      if (face) face.textContent = clock(remaining);
      if (remaining <= 60 && remaining > 0) say("minute", "One minute left to pay.");
      if (remaining <= 0) {
        clearInterval(timer);
        el.hidden = true;
        section.querySelectorAll("form").forEach(function (f) { f.hidden = true; });
        var note = section.querySelector("[data-countdown-expired]");
        if (note) note.hidden = false;
        say("expired", "Your reservation has expired.");
      }
    }
    var timer = setInterval(tick, 1000);
    tick();
  }

  // A form being sent shows it and cannot be sent twice.
  function busy(form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sending")) { event.preventDefault(); return; }
      form.setAttribute("data-sending", "1");
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.setAttribute("aria-busy", "true");
        setTimeout(function () { b.disabled = true; }, 0);
      });
    });
  }

  // Stripe's card field, when the platform charges through Stripe: the card goes to
  // Stripe, and only the PaymentMethod id comes back to us as the token.
  function stripeForm(form) {
    if (!window.Stripe) return;
    var stripe = window.Stripe(form.getAttribute("data-stripe-key"));
    var card = stripe.elements().create("card");
    card.mount("#card-element");
    var error = form.querySelector("#card-error");
    var token = form.querySelector("[data-stripe-token]");
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      if (token.value) return;
      event.preventDefault();
      button.disabled = true;
      stripe.createPaymentMethod({ type: "card", card: card }).then(function (result) {
        if (result.error) {
          error.textContent = result.error.message;
          error.hidden = false;
          button.disabled = false;
        } else {
          token.value = result.paymentMethod.id;
          form.submit();
        }
      });
    });
  }

  // Live availability: the cards and the ticket on this page follow the ticket feed
  // (Server-Sent Events from the query service), so a ticket reserved or sold elsewhere
  // shows it at once. The browser reconnects by itself and resumes where it was.
  var LABELS = { available: "Available", reserved: "Reserved", sold: "Sold" };
  function live() {
    var shown = document.querySelectorAll("[data-ticket-id]");
    if (!shown.length || !window.EventSource) return;
    var ids = [];
    shown.forEach(function (el) { ids.push(el.getAttribute("data-ticket-id")); });
    var feed = new EventSource("/api/query/tickets/events?ids=" + encodeURIComponent(ids.join(",")));
    feed.addEventListener("ticket", function (event) {
      var change;
      try { change = JSON.parse(event.data); } catch (e) { return; }
      document.querySelectorAll('[data-ticket-id="' + change.id + '"]').forEach(function (el) { update(el, change.status); });
    });
    feed.addEventListener("reload", function () {
      feed.close();
      var main = document.getElementById("content");
      if (!main || main.querySelector("[data-stale]")) return;
      var note = document.createElement("p");
      note.className = "notice";
      note.setAttribute("role", "status");
      note.setAttribute("data-stale", "");
      note.innerHTML = 'Tickets changed while this page was away. <a href="">Reload it</a> to see them.';
      main.insertBefore(note, main.firstChild);
    });
  }
  function update(el, status) {
    var badge = el.querySelector("[data-status]");
    if (badge && LABELS[status]) {
      badge.textContent = LABELS[status];
      badge.className = "badge badge-" + status;
    }
    var buy = el.querySelector("[data-buy]");
    if (buy) {
      buy.disabled = status !== "available";
      buy.setAttribute("aria-disabled", String(status !== "available"));
    }
    var note = el.querySelector("[data-live-note]");
    if (note) {
      note.textContent = status === "available" ? "It is available: buying reserves it for you while you pay."
        : status === "reserved" ? "Someone has just reserved it. If they do not pay in time, it comes back on sale."
        : "It has just been sold.";
    }
  }

  function start() {
    document.querySelectorAll("[data-countdown]").forEach(countdown);
    document.querySelectorAll("[data-busy-form]").forEach(busy);
    document.querySelectorAll("[data-stripe-form]").forEach(stripeForm);
    live();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
