// The pay page's form: Stripe.js's Payment Element and confirmPayment, as Stripe
// documents. The PaymentIntent says what the element offers: cards, and on invoices in US
// dollars where the clinic takes them, US bank accounts (the element then links the
// account and shows the debit mandate; the payment is "processing" for days).
// The card number goes from this page to Stripe, never to our servers. Whether the
// invoice is paid is decided by our server from Stripe (its webhook, or asked about the
// PaymentIntent this script names on return), not by this script:
// the script only decides what to tell the patient while that happens.
"use strict";

(function () {
  const form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") {
    return;
  }
  const NOT_CHARGED = "This card was not charged. Try again, or use another card.";
  const NOT_CONFIRMED = "Your bank did not confirm the payment, so nothing was charged. Reload this page to pay with a card.";
  const stripe = Stripe(form.dataset.publishableKey);
  // "authenticate": the clinic charged the saved card and the bank wants the patient to
  // confirm it (3-D Secure); there is no card to type in, only that confirmation.
  const authenticate = form.dataset.mode === "authenticate";
  let elements = null;
  if (!authenticate) {
    elements = stripe.elements({ clientSecret: form.dataset.clientSecret });
    elements.create("payment").mount("#payment-element");
  }
  const button = document.getElementById("pay-button");
  const message = document.getElementById("payment-message");
  button.disabled = false;

  // The page may have been open for a while: the front desk may have charged the card
  // on file, or the invoice may have been cancelled. Ask before taking the card.
  async function stillPayable() {
    try {
      const response = await fetch(form.dataset.statusUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) {
        return { payable: false, message: "This payment link no longer works." };
      }
      return await response.json();
    } catch (error) {
      return { payable: false, message: "We could not reach the clinic. Check your connection and try again." };
    }
  }

  async function chooseToSave(save) {
    try {
      const response = await fetch(form.dataset.saveCardUrl, {
        method: "POST",
        // The portal's forms carry its session's token; the pay page's link is its own.
        headers: Object.assign(
          { "Content-Type": "application/json", Accept: "application/json" },
          form.dataset.csrf ? { "X-CSRF-Token": form.dataset.csrf } : {}
        ),
        credentials: "same-origin",
        cache: "no-store",
        body: JSON.stringify({ save: save }),
      });
      return response.ok;
    } catch (error) {
      return false;
    }
  }

  // Back to our page, naming the PaymentIntent just confirmed: the server decides from
  // that one what to show (Stripe appends the same name when it redirects).
  function backFrom(intent) {
    const url = new URL(form.dataset.returnUrl, window.location.href);
    if (intent && intent.id) {
      url.searchParams.set("payment_intent", intent.id);
    }
    window.location.assign(url.href);
  }

  function stop(text, again) {
    message.textContent = text;
    button.disabled = !again;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    message.textContent = "";
    if (authenticate) {
      const confirmed = await stripe.handleNextAction({ clientSecret: form.dataset.clientSecret });
      const done = confirmed.paymentIntent || {};
      if (!confirmed.error && (done.status === "succeeded" || done.status === "processing")) {
        backFrom(done);
      } else {
        stop(form.dataset.notConfirmed || NOT_CONFIRMED, false);
      }
      return;
    }
    const status = await stillPayable();
    if (!status.payable) {
      stop(status.message || "This invoice can no longer be paid here.", false);
      return;
    }
    // Ticked or not, the clinic is told before the card is confirmed: only a ticked box
    // keeps the card for later, with the words shown beside it.
    const saveBox = document.getElementById("save-card");
    if (saveBox && !(await chooseToSave(saveBox.checked))) {
      stop("We could not reach the clinic. Check your connection and try again.", true);
      return;
    }
    await elements.fetchUpdates();  // the PaymentIntent may now keep the card for later
    const result = await stripe.confirmPayment({
      elements: elements,
      redirect: "if_required",  // a card needs no redirect; 3-D Secure opens in the page
      confirmParams: { return_url: new URL(form.dataset.returnUrl, window.location.href).href },
    });
    if (result.error) {
      stop(result.error.message || NOT_CHARGED, true);
      return;
    }
    const intent = result.paymentIntent || {};
    if (intent.status === "succeeded" || intent.status === "processing") {
      backFrom(intent);  // the server shows what Stripe says of this PaymentIntent
      return;
    }
    // requires_payment_method (authentication failed), requires_action, canceled: no money moved.
    stop(NOT_CHARGED, true);
  });
})();
