// The admin's rescuer list (/rescuers): certified volunteers with their certificates and duty,
// and "Enrol phone": a new rescuer token shown once as a QR code of the responder app's
// enrolment link (drawn by the server: POST /api/v1/rescuers/{id}/enrolment), which the
// rescuer's phone camera opens to sign in.
import { $, h, t, api, header, requireLogin, onLang } from "./common.js";

header("rescuers");
await requireLogin(["admin"]);
let items = [], cursor = null;

async function load(more) {
  const page = await api(`/api/v1/rescuers?limit=100${more && cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
  items = more ? items.concat(page.items) : page.items;
  cursor = page.next_cursor;
  render();
}

function render() {
  const today = new Date().toISOString().slice(0, 10);
  $("#rescuers").replaceChildren(...items.map(r => {
    const valid = r.cert_issued <= today && today <= r.cert_expires;
    return h("li", { class: "card", dataset: { rescuer: r.id } },
      h("strong", {}, r.name), " ", h("span", { class: "muted" }, `#${r.id} · ${r.certificate_no}`),
      h("div", { class: valid ? "muted" : "error" }, t("certRange", r.cert_issued, r.cert_expires, valid)),
      h("div", { class: "muted" }, r.on_duty ? t("onDutyNow") : t("offDutyNow")),
      h("button", { type: "button", class: "enrol", onclick: () => enrol(r) }, t("enrolPhone")));
  }));
  if (!items.length) $("#rescuers").replaceChildren(h("li", { class: "muted" }, t("noRescuers")));
  $("#more").hidden = !cursor;
}

/** Issues the token and shows it once as a QR code; closing the dialog forgets it. */
async function enrol(r) {
  let e;
  try {
    e = await api(`/api/v1/rescuers/${r.id}/enrolment`, { method: "POST", body: { base_url: location.origin } });
  } catch (err) {
    return alertDialog(t("error", err.message));
  }
  const qr = h("img", { id: "enrol-qr", class: "qr", alt: t("enrolQrAlt", r.name), width: 280, height: 280,
    src: "data:image/svg+xml;base64," + btoa(e.qr_svg), dataset: { url: e.url } });
  const link = h("details", {}, h("summary", {}, t("enrolShowLink")), h("code", { id: "enrol-url", class: "secret" }, e.url));
  const done = h("button", { type: "button", class: "primary", id: "enrol-done" }, t("enrolDone"));
  const dlg = h("dialog", { id: "enrol", "aria-labelledby": "enrol-title" },
    h("h2", { id: "enrol-title" }, t("enrolTitle", r.name)),
    h("p", { class: "call", role: "alert" }, t("enrolSecret")),
    qr, h("p", { class: "muted" }, t("enrolHow")), link,
    h("p", { class: "muted" }, t("enrolRevoke", e.token_id)), done);
  const forget = () => { dlg.close(); dlg.remove(); };
  done.addEventListener("click", forget);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  done.focus();
}

function alertDialog(text) {
  const dlg = h("dialog", {}, h("p", { class: "error" }, text), h("button", { type: "button", onclick: () => dlg.close() }, t("close")));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg); dlg.showModal();
}

$("#more").addEventListener("click", () => load(true));
onLang(render);
await load(false);
document.body.dataset.ready = "1";
