// A Grafana-style time range picker: quick relative ranges, or an absolute from/to typed as
// "2026-11-26 05:00:00" (local time), unix seconds/ms, or relative ("now-6h"). Absolute times go
// in the URL as epoch milliseconds, as Grafana does, so links can be shared.
import {h, $, clear, RANGES, parseDuration} from './lib.js';

const pad = (n) => String(n).padStart(2, '0');
export function fmtLocal(sec) {
  const d = new Date(sec * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A typed bound → the URL form ("now-6h", "now", or epoch ms), or null when it is not valid.
export function normalizeBound(s) {
  const v = String(s || '').trim();
  if (v === 'now') return v;
  const rel = /^now-(.+)$/.exec(v);
  if (rel) return parseDuration(rel[1]) ? v : null;
  if (/^\d{9,13}(\.\d+)?$/.test(v)) { const n = Number(v); return String(Math.round(n > 1e11 ? n : n * 1000)); }
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(v);
  if (m) {
    const d = new Date(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
    return isNaN(d) || d.getMonth() !== +m[2] - 1 ? null : String(d.getTime());
  }
  const t = Date.parse(v);  // ISO 8601 with a zone
  return /^\d{4}-\d{2}-\d{2}T/.test(v) && !isNaN(t) ? String(t) : null;
}

const isAbs = (b) => /^\d+$/.test(String(b));
function shown(b) { return isAbs(b) ? fmtLocal(Number(b) / 1000) : String(b); }
export function label(from, to) {
  const m = /^now-(.+)$/.exec(from);
  if (m && to === 'now') return 'Last ' + m[1];
  return shown(from) + ' → ' + shown(to);
}

// Mounts the picker into `root`; onChange(from, to) gets URL-form bounds. Returns {update}.
export function rangePicker(root, from, to, onChange) {
  let cur = {from: String(from || 'now-1h'), to: String(to || 'now')};
  const button = h('button', {type: 'button', class: 'btn', id: 'range-button', 'aria-haspopup': 'dialog'});
  const fromIn = h('input', {id: 'range-from', class: 'mono', size: 19, autocomplete: 'off', spellcheck: 'false'});
  const toIn = h('input', {id: 'range-to', class: 'mono', size: 19, autocomplete: 'off', spellcheck: 'false'});
  const err = h('div', {class: 'error', id: 'range-error', role: 'alert'});
  const apply = () => {
    const f = normalizeBound(fromIn.value), t = normalizeBound(toIn.value);
    clear(err);
    if (f === null) { err.textContent = 'From: not a time (use 2026-11-26 05:00:00, now-6h or unix time)'; return; }
    if (t === null) { err.textContent = 'To: not a time (use 2026-11-26 06:00:00, now or unix time)'; return; }
    const sec = (b) => (isAbs(b) ? Number(b) / 1000 : b === 'now' ? Date.now() / 1000 : Date.now() / 1000 - parseDuration(b.slice(4)));
    if (sec(f) >= sec(t)) { err.textContent = 'From must be before To'; return; }
    set(f, t, true);
  };
  const enter = (e) => { if (e.key === 'Enter') { e.preventDefault(); apply(); } };
  fromIn.addEventListener('keydown', enter); toIn.addEventListener('keydown', enter);
  const quick = h('div', {class: 'range-quick'}, RANGES.map((r) => h('button', {type: 'button', class: 'btn ghost small',
    'data-range': r, on: {click: () => set('now-' + r, 'now', true)}}, 'Last ' + r)));
  const menu = h('div', {class: 'range-menu', id: 'range-menu', hidden: true},
    h('div', {class: 'range-abs'}, h('b', {}, 'Absolute range'),
      h('label', {}, 'From', fromIn), h('label', {}, 'To', toIn), err,
      h('button', {type: 'button', class: 'btn primary', id: 'range-apply', on: {click: apply}}, 'Apply time range')),
    h('div', {}, h('b', {}, 'Quick ranges'), quick));
  const wrap = h('div', {class: 'range-picker'}, button, menu);
  button.addEventListener('click', () => { menu.hidden = !menu.hidden; if (!menu.hidden) fromIn.focus(); });
  document.addEventListener('click', (e) => { if (!wrap.contains(e.target)) menu.hidden = true; });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') menu.hidden = true; });
  clear(root).append(wrap);

  function set(f, t, fire) {
    cur = {from: f, to: t};
    button.textContent = label(f, t);
    fromIn.value = shown(f); toIn.value = shown(t);
    menu.hidden = true;
    if (fire) onChange(f, t);
  }
  set(cur.from, cur.to, false);
  return {update: (f, t) => set(String(f), String(t), false), get: () => ({...cur}), el: wrap, $: (s) => $(s, wrap)};
}
