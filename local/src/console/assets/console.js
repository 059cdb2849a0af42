// The console's only script. Everything works without it but the live
// tail; it shows times in the reader's zone (UTC stays on hover), copies a
// payload, and adds rows as they arrive. Rows arrive as JSON and are
// written with textContent, never as markup.
(function () {
  'use strict';

  function localize(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var utc = t.getAttribute('datetime');
      var d = new Date(utc);
      if (!isNaN(d.getTime())) {
        t.title = utc + ' (UTC)';
        t.textContent = d.toLocaleString();
      }
    });
  }

  function cell(text, className) {
    var td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function timeCell(iso) {
    var td = document.createElement('td');
    if (!iso) { td.textContent = '\u2014'; return td; }
    var t = document.createElement('time');
    t.setAttribute('datetime', iso);
    t.textContent = iso;
    td.appendChild(t);
    localize(td);
    return td;
  }

  function row(r) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-key', r.key);
    var id = document.createElement('td');
    id.className = 'id';
    var a = document.createElement('a');
    a.href = r.href;
    a.textContent = r.event_id;
    id.appendChild(a);
    var state = document.createElement('td');
    var pill = document.createElement('span');
    pill.className = 'pill s-' + r.state.toLowerCase();
    pill.textContent = r.state;
    state.appendChild(pill);
    tr.append(timeCell(r.received), cell(r.provider), cell(r.event_type), id, state,
      cell(String(r.attempts), 'num'), timeCell(r.next_attempt), cell(r.last_error, 'error'));
    tr.classList.add('fresh');
    return tr;
  }

  function upsert(tbody, r) {
    var fresh = row(r);
    var old = Array.prototype.find.call(tbody.rows, function (tr) { return tr.getAttribute('data-key') === r.key; });
    if (old) {
      tbody.replaceChild(fresh, old);
    } else {
      tbody.insertBefore(fresh, tbody.firstChild);
      var empty = document.getElementById('empty');
      if (empty) empty.hidden = true;
    }
  }

  function liveTail() {
    var box = document.getElementById('live');
    var tbody = document.getElementById('events');
    if (!box || !tbody || !window.EventSource) return;
    box.closest('label').hidden = false;
    var source = null;
    box.addEventListener('change', function () {
      if (box.checked) {
        var q = new URLSearchParams(window.location.search);
        q.delete('page');
        q.set('after', document.body.getAttribute('data-rendered'));
        source = new EventSource('/console/stream?' + q.toString());
        source.addEventListener('rows', function (e) {
          JSON.parse(e.data).forEach(function (r) { upsert(tbody, r); });
        });
      } else if (source) {
        source.close();
        source = null;
      }
    });
  }

  function copyButtons() {
    document.querySelectorAll('button[data-copy]').forEach(function (b) {
      var target = document.getElementById(b.getAttribute('data-copy'));
      if (!target || !navigator.clipboard) return;
      b.hidden = false;
      b.addEventListener('click', function () {
        navigator.clipboard.writeText(target.textContent).then(function () { b.textContent = 'Copied'; },
          function () { b.textContent = 'Copy failed'; });
      });
    });
  }

  localize(document);
  copyButtons();
  liveTail();
})();
