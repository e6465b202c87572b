// Alerts: firing/pending alerts (rule state from /api/v1/alerts, else Alertmanager's
// /api/v2/alerts), rule groups with health and last evaluation, notification history.
import {h, $, clear, api, table, stateBox, showFailure, labelPills, ago, isoToSec, fmtDuration} from './lib.js';

for (const tab of document.querySelectorAll('.tab[data-tab]')) {
  tab.addEventListener('click', () => {
    for (const t of document.querySelectorAll('.tab[data-tab]')) {
      t.classList.toggle('active', t === tab);
      $('#' + t.dataset.tab).classList.toggle('hidden', t !== tab);
    }
  });
}

export function silenceLink(labels) {
  const p = new URLSearchParams();
  for (const k of Object.keys(labels || {}).sort()) p.append('matcher', k + '=' + labels[k]);
  return '/silences?' + p + '#new';
}

const keyOf = (labels) => JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));

// Rule alerts (/api/v1/alerts: firing and pending, with value) merged with what Alertmanager holds
// (/api/v2/alerts: also alerts sent by other Prometheus servers, and silenced/inhibited state).
async function active() {
  const box = $('#active-list');
  const [r1, r2] = await Promise.all([api('/api/v1/alerts'), api('/api/v2/alerts')]);
  if (!r1.ok && !r2.ok) { showFailure(box, r1.missing ? r2 : r1, 'Alerts API'); return; }
  const byKey = new Map();
  if (r1.ok) {
    for (const a of (r1.data.data && r1.data.data.alerts) || []) {
      byKey.set(keyOf(a.labels || {}), {labels: a.labels || {}, annotations: a.annotations || {}, state: a.state,
        since: isoToSec(a.activeAt), value: a.value});
    }
  }
  if (r2.ok) {
    for (const a of r2.data || []) {
      const k = keyOf(a.labels || {});
      const st = a.status && a.status.state === 'suppressed' ? 'silenced' : 'firing';
      if (byKey.has(k)) { if (st === 'silenced') byKey.get(k).state = st; continue; }
      byKey.set(k, {labels: a.labels || {}, annotations: a.annotations || {}, state: st, since: isoToSec(a.startsAt)});
    }
  }
  const alerts = [...byKey.values()];
  clear(box);
  if (!alerts.length) { box.append(stateBox('empty', 'No alerts are firing or pending.')); return; }
  const order = {firing: 0, pending: 1, silenced: 2};
  alerts.sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || (a.labels.alertname || '').localeCompare(b.labels.alertname || ''));
  box.append(table(['State', 'Alert', 'Labels', 'Annotations', 'Since', ''], alerts.map((a) => h('tr', {class: 'alert-row'},
    h('td', {}, h('span', {class: 'badge ' + a.state}, a.state)),
    h('td', {}, h('strong', {}, a.labels.alertname || ''), a.value !== undefined ? h('div', {class: 'muted mono'}, 'value ' + a.value) : null),
    h('td', {}, labelPills(a.labels, ['alertname'])),
    h('td', {}, Object.entries(a.annotations).map(([k, v]) => h('div', {}, h('span', {class: 'muted'}, k + ': '), v))),
    h('td', {class: 'muted'}, isFinite(a.since) ? ago(a.since) : ''),
    h('td', {}, h('a', {class: 'btn small', href: silenceLink(a.labels)}, 'Silence'))))));
}

async function rules() {
  const box = $('#rules-list');
  const r = await api('/api/v1/rules');
  if (!r.ok) { showFailure(box, r, 'Rules API'); return; }
  const groups = (r.data.data && r.data.data.groups) || [];
  clear(box);
  if (!groups.length) { box.append(stateBox('empty', 'No rule groups are loaded (rule_files in heron.yml).')); return; }
  for (const g of groups) {
    box.append(h('h2', {}, g.name, ' ', h('span', {class: 'muted'}, g.file || '')),
      h('p', {class: 'muted'}, `interval ${fmtDuration(g.interval || 0)} · last evaluation ${g.lastEvaluation ? ago(isoToSec(g.lastEvaluation)) : 'never'}` +
        (g.evaluationTime !== undefined ? ` · took ${(g.evaluationTime * 1000).toFixed(1)} ms` : '')),
      table(['Rule', 'State', 'Health', 'Last evaluation', 'Query'], (g.rules || []).map((rule) => h('tr', {},
        h('td', {}, h('strong', {}, rule.name), ' ', h('span', {class: 'muted'}, rule.type || '')),
        h('td', {}, rule.state ? h('span', {class: 'badge ' + rule.state}, rule.state) : ''),
        h('td', {}, h('span', {class: 'badge ' + (rule.health === 'ok' ? 'ok' : rule.health === 'err' ? 'bad' : 'unknown')}, rule.health || 'unknown'),
          rule.lastError ? h('div', {class: 'error'}, rule.lastError) : null),
        h('td', {class: 'muted'}, rule.lastEvaluation ? ago(isoToSec(rule.lastEvaluation)) : 'never'),
        h('td', {}, h('a', {class: 'mono', href: '/explore?q=' + encodeURIComponent(rule.query || '')}, rule.query || ''))))));
  }
}

// Notification history: every notification sent, failed or dropped (newest first), with
// receiver and outcome filters and id-cursor pages ("Older").
const OUTCOME_BADGE = {sent: 'ok', failed: 'bad', dropped: 'warn'};
const hist = {receiver: '', outcome: '', pages: []};

async function history(before = null) {
  const box = $('#history-list');
  const q = new URLSearchParams({limit: '50'});
  if (hist.receiver) q.set('receiver', hist.receiver);
  if (hist.outcome) q.set('outcome', hist.outcome);
  if (before) q.set('before', String(before));
  const r = await api('/api/heron/notifications?' + q);
  if (!r.ok) { showFailure(box, r, 'Notification history'); return; }
  clear(box);
  const receiver = h('select', {id: 'history-receiver'}, h('option', {value: ''}, 'All receivers'),
    ...r.data.receivers.map((name) => h('option', {value: name, selected: name === hist.receiver}, name)));
  const outcome = h('select', {id: 'history-outcome'}, h('option', {value: ''}, 'Any outcome'),
    ...['sent', 'failed', 'dropped'].map((o) => h('option', {value: o, selected: o === hist.outcome}, o)));
  const refilter = () => { hist.receiver = receiver.value; hist.outcome = outcome.value; hist.pages = []; history(); };
  receiver.addEventListener('change', refilter);
  outcome.addEventListener('change', refilter);
  box.append(h('div', {class: 'controls'}, h('label', {}, 'Receiver ', receiver), h('label', {}, 'Outcome ', outcome)));
  if (!r.data.items.length) {
    box.append(stateBox('empty', hist.receiver || hist.outcome ? 'No notification matches.' : 'No notifications sent yet.'));
    return;
  }
  box.append(table(['When', 'Receiver', 'Integration', 'Outcome', 'Alerts', 'Attempts', 'Error'],
    r.data.items.map((n) => h('tr', {class: 'history-row', 'data-outcome': n.outcome},
      h('td', {class: 'muted', title: new Date(n.ts * 1000).toISOString()}, ago(n.ts)),
      h('td', {}, n.receiver),
      h('td', {class: 'mono'}, n.integration),
      h('td', {}, h('span', {class: 'badge ' + (OUTCOME_BADGE[n.outcome] || 'unknown')}, n.outcome)),
      h('td', {title: n.group_key}, h('span', {class: 'badge ' + (n.status === 'resolved' ? 'resolved' : 'firing')}, n.status),
        ' ' + n.alerts.join(', ') + ` (${n.firing} firing, ${n.resolved} resolved)`),
      h('td', {class: 'num', title: fmtDuration(n.duration_ms / 1000)}, String(n.attempts)),
      h('td', {class: 'error'}, n.error)))));
  const nav = h('div', {class: 'controls'});
  if (hist.pages.length) {
    nav.append(h('button', {class: 'btn ghost', id: 'history-newer', on: {click: () => { hist.pages.pop(); history(hist.pages[hist.pages.length - 1] || null); }}}, 'Newer'));
  }
  if (r.data.next) {
    nav.append(h('button', {class: 'btn ghost', id: 'history-older', on: {click: () => { hist.pages.push(r.data.next); history(r.data.next); }}}, 'Older'));
  }
  box.append(nav);
}

active(); rules(); history();
