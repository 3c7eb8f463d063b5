// AgentPort web UI: small progressive enhancements; every page also works without JavaScript.
"use strict";

function formatLeft(ms) {
  if (ms <= 0) return "expired";
  const s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return h + " h " + m + " min";
  if (m) return m + " min " + r + " s";
  return r + " s";
}

function tickCountdowns() {
  for (const el of document.querySelectorAll("[data-expires]")) {
    const left = Date.parse(el.dataset.expires) - Date.now();
    el.textContent = formatLeft(left);
    el.classList.toggle("expired", left <= 0);
  }
}

function liveQueue(container) {
  const status = document.getElementById("live-status");
  let pending = null;
  const refresh = async () => {
    pending = null;
    const response = await fetch(container.dataset.rowsUrl, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.ok) {
      container.innerHTML = await response.text();
      tickCountdowns();
      wireForms(container);
    }
  };
  const source = new EventSource("/ui/events");
  source.addEventListener("approval", () => { if (!pending) pending = setTimeout(refresh, 150); });
  source.onopen = () => { if (status) status.textContent = "Live: new requests appear here as agents ask."; };
  source.onerror = () => { if (status) status.textContent = "Reconnecting…"; };
  // Expired rows leave the queue without an event from the browser's point of view: refresh now and then.
  setInterval(() => { if (container.querySelector(".countdown.expired")) refresh(); }, 5000);
}

function watchRequest(article) {
  if (article.dataset.status !== "pending") return;
  const id = article.dataset.requestId;
  const source = new EventSource("/ui/events");
  source.addEventListener("approval", (event) => {
    const data = JSON.parse(event.data);
    const form = document.getElementById("decide-form");
    const busy = form && form.contains(document.activeElement) && document.activeElement.value;
    if (data.request_id === id && data.type === "approval.decided" && !busy) window.location.reload();
  });
}

function copyText(text, button) {
  const done = () => { const label = button.textContent; button.textContent = "Copied"; setTimeout(() => { button.textContent = label; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  done();
}

function wireForms(root) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tickCountdowns();
  setInterval(tickCountdowns, 1000);
  const queue = document.getElementById("queue-live");
  if (queue) liveQueue(queue);
  const article = document.querySelector("article.approval");
  if (article) watchRequest(article);
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copyText(document.getElementById(button.dataset.copy).textContent, button));
  }
  const filter = document.getElementById("catalog-filter");
  if (filter) {
    filter.addEventListener("input", () => {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      for (const item of document.querySelectorAll(".catalog-item")) {
        item.hidden = !words.every((w) => item.dataset.search.includes(w));
      }
    });
  }
  wireForms(document);
});
