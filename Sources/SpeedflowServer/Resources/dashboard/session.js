// Dashboard sign-in (issue #10). When the server requires authentication, the page asks once for a reader
// or admin token, trades it for a session cookie (POST /session: HttpOnly, SameSite=Strict — the token is
// never stored by the page, never put in a URL), and reloads. app.js calls SpeedflowSession.unauthorized()
// when a request answers 401 (session expired or credential revoked). With --auth off nothing is shown.
'use strict';
(() => {
  let shown = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }

  function showSignIn(message) {
    if (shown) return;
    shown = true;
    const input = el('input', { type: 'password', id: 'signin-token', name: 'token', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'sft_…', required: '', 'aria-describedby': 'signin-help' });
    const error = el('p', { class: 'signin-error', id: 'signin-error', role: 'alert' }, message || '');
    const button = el('button', { type: 'submit', class: 'btn', id: 'signin-submit' }, 'Sign in');
    const form = el('form', { class: 'signin-card', id: 'signin-form' },
      el('h2', {}, 'Sign in to Speedflow'),
      el('p', { id: 'signin-help' }, 'This server requires a reader or admin token (speedflow token create --role reader).'),
      el('label', { for: 'signin-token' }, 'Token'), input, error, button);
    const overlay = el('div', { class: 'signin-overlay', id: 'signin', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'signin-title' }, form);
    form.querySelector('h2').id = 'signin-title';
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      button.disabled = true;
      error.textContent = '';
      try {
        const res = await fetch('/session', {
          method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ token: input.value.trim() }), cache: 'no-store', credentials: 'same-origin',
        });
        if (res.ok) {
          input.value = '';
          location.reload();
          return;
        }
        let reason = `HTTP ${res.status}`;
        try { const body = await res.json(); reason = body.message || body.reason || reason; } catch { /* not JSON */ }
        error.textContent = reason;
      } catch (err) {
        error.textContent = String(err);
      }
      button.disabled = false;
    });
    document.body.append(overlay);
    input.focus();
  }

  function addSignOut(who) {
    const header = document.querySelector('.topbar');
    if (!header || document.getElementById('signout-btn')) return;
    const button = el('button', { type: 'button', class: 'btn btn-quiet', id: 'signout-btn', title: `Signed in as ${who}` }, 'Sign out');
    button.addEventListener('click', async () => {
      await fetch('/session', { method: 'DELETE', credentials: 'same-origin' }).catch(() => {});
      location.reload();
    });
    header.append(button);
  }

  async function check() {
    try {
      const res = await fetch('/session', { headers: { Accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' });
      if (!res.ok) return;
      const body = await res.json();
      if (body.auth !== 'required') return;
      if (body.credential) addSignOut(`${body.role} ${body.credential}`); else showSignIn();
    } catch { /* the status line of app.js reports connectivity */ }
  }

  window.SpeedflowSession = {
    unauthorized() { showSignIn('Your session ended (expired, signed out or revoked). Sign in again.'); },
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', check); else check();
})();
