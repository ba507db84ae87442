// The pay page's card form: Stripe.js Elements and confirmCardPayment, as Stripe documents.
// The card number goes from this page to Stripe, never to our servers. Whether the
// invoice is paid is decided by our server from Stripe's webhook, not by this script.
"use strict";

(function () {
  const form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") {
    return;
  }
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const button = document.getElementById("pay-button");
  const message = document.getElementById("payment-message");
  button.disabled = false;

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    message.textContent = "";
    const result = await stripe.confirmCardPayment(form.dataset.clientSecret, {
      payment_method: { card: card },
    });
    if (result.error) {
      message.textContent = (result.error && result.error.message) || "Your card was declined.";
      button.disabled = false;
      return;
    }
    window.location.assign(form.dataset.returnUrl);
  });
})();
