// The landing page of a Scratch4School server (FRONTEND_URL in the development
// stack): log in through the school's identity provider, see who you are, list,
// download and upload projects. Plain browser JavaScript, no build step, no
// external resources. It speaks the API in shared/API.md; the session token
// lives in sessionStorage (this tab only) and travels in X-Session-ID.
(function () {
  'use strict';

  var BACKEND = document.documentElement.getAttribute('data-backend') || '/backend';
  var TOKEN_KEY = 's4s_session_id';
  var memoryToken = null; // when sessionStorage is unavailable (some privacy modes)

  function $(id) {
    return document.getElementById(id);
  }

  // ------------------------------------------------------------ the token

  function getToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return memoryToken;
    }
  }

  function setToken(token) {
    memoryToken = token;
    try {
      if (token) {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (e) {
      /* memoryToken keeps it for this page view */
    }
  }

  // The server's /authorize sends the browser back here with ?session_id=…
  // or ?error=…. Take them, and take them out of the address bar so the token
  // is not bookmarked, shared or kept in the history.
  function takeParamsFromUrl() {
    var params = new URLSearchParams(window.location.search);
    var found = { session: params.get('session_id'), error: params.get('error') };
    if (found.session === null && found.error === null) {
      return found;
    }
    params.delete('session_id');
    params.delete('error');
    var rest = params.toString();
    var clean = window.location.pathname + (rest ? '?' + rest : '') + window.location.hash;
    window.history.replaceState(null, '', clean);
    if (found.session) {
      setToken(found.session);
    }
    return found;
  }

  // ------------------------------------------------------------ talking to the server

  // One API call. Resolves to {status, body (parsed JSON or null), response};
  // rejects only when the server could not be reached at all.
  function api(method, path, options) {
    options = options || {};
    var headers = {};
    var token = getToken();
    if (token) {
      headers['X-Session-ID'] = token;
    }
    return fetch(BACKEND + path, {
      method: method,
      headers: headers,
      body: options.body,
      credentials: 'same-origin',
      cache: 'no-store',
    }).then(function (response) {
      if (options.raw && response.ok) {
        return { status: response.status, body: null, response: response };
      }
      return response.text().then(function (text) {
        var body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (e) {
          body = null;
        }
        return { status: response.status, body: body, response: response };
      });
    });
  }

  function errorText(res) {
    if (res.body && typeof res.body.error === 'string') {
      return res.body.error;
    }
    if (res.body && typeof res.body.message === 'string') {
      return res.body.message;
    }
    if (res.status === 413) {
      return 'The file is too large for this server';
    }
    if (res.status === 502 || res.status === 503 || res.status === 504) {
      return 'The server is busy or not running (HTTP ' + res.status + '); please try again';
    }
    return 'The server answered HTTP ' + res.status;
  }

  // The projects routes may be missing on a server that is still being built.
  function notAvailable(res) {
    return res.status === 404 || res.status === 405;
  }

  // ------------------------------------------------------------ what is shown

  function showMessage(text, kind) {
    var el = $('message');
    el.textContent = text;
    el.className = kind || 'info';
    el.hidden = false;
  }

  function clearMessage() {
    var el = $('message');
    el.textContent = '';
    el.hidden = true;
  }

  function setState(state) {
    document.body.setAttribute('data-state', state);
    $('loading-view').hidden = state !== 'loading';
    $('logged-out-view').hidden = state !== 'logged-out';
    $('logged-in-view').hidden = state !== 'logged-in';
    $('login').hidden = state !== 'logged-out';
    $('logout').hidden = state !== 'logged-in';
  }

  function when(iso) {
    if (!iso) {
      return '';
    }
    // The server writes microseconds; Date wants at most milliseconds.
    var d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
    return isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  function groupNames(groups) {
    if (!Array.isArray(groups) || groups.length === 0) {
      return '';
    }
    return groups
      .map(function (g) {
        return g && (g.name || g.external_id || String(g.id));
      })
      .join(', ');
  }

  function renderUser(user) {
    $('who-name').textContent = user.username || user.id || '(no name)';
    $('who-role').textContent = user.role || 'unknown';
    $('who-groups').textContent = groupNames(user.groups) || 'none';
    $('who-email').textContent = user.email || '—';
  }

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) {
      el.className = className;
    }
    if (text !== undefined) {
      el.textContent = text;
    }
    return el;
  }

  function renderProjects(projects) {
    var list = $('projects');
    list.textContent = '';
    $('project-count').textContent = '(' + projects.length + ')';
    if (projects.length === 0) {
      list.appendChild(
        element(
          'li',
          'empty',
          'No projects yet. Upload an .sb3 file above, or save one from the Scratch editor.'
        )
      );
      return;
    }
    projects.forEach(function (p) {
      var li = element('li', 'project');
      li.setAttribute('data-id', String(p.id));

      var img = element('img', 'thumb');
      var src = typeof p.thumbnail_url === 'string' && p.thumbnail_url.charAt(0) === '/'
        ? p.thumbnail_url
        : BACKEND + '/api/projects/' + encodeURIComponent(p.id) + '/thumbnail';
      // The version in the URL makes the browser fetch a changed thumbnail.
      img.src = src + (p.version ? '?v=' + encodeURIComponent(p.version) : '');
      img.alt = '';
      img.width = 160;
      img.height = 120;
      img.addEventListener('error', function () {
        img.classList.add('missing');
      });
      li.appendChild(img);

      var info = element('div', 'info');
      info.appendChild(element('h3', 'title', p.title || 'Untitled Project'));
      var details = [];
      if (p.updated_at) {
        details.push('changed ' + when(p.updated_at));
      }
      if (p.version) {
        details.push('version ' + p.version);
      }
      var shared = groupNames(p.shared_with_groups);
      details.push(p.is_published && shared ? 'shared with ' + shared : 'not shared');
      info.appendChild(element('p', 'details', details.join(' · ')));
      if (p.description) {
        info.appendChild(element('p', 'description', p.description));
      }
      var button = element('button', 'download', 'Download');
      button.type = 'button';
      button.addEventListener('click', function () {
        download(p, button);
      });
      info.appendChild(button);
      li.appendChild(info);
      list.appendChild(li);
    });
  }

  // ------------------------------------------------------------ actions

  function loadSession() {
    if (!getToken()) {
      setState('logged-out');
      return Promise.resolve();
    }
    return api('GET', '/session').then(
      function (res) {
        if (res.status === 200 && res.body && res.body.user) {
          renderUser(res.body.user);
          setState('logged-in');
          return loadProjects();
        }
        if (res.status === 400 || res.status === 401) {
          setToken(null);
          showMessage('Your session has ended. Please log in again.', 'info');
        } else {
          showMessage('Could not check your login: ' + errorText(res), 'error');
        }
        setState('logged-out');
      },
      function (err) {
        showMessage('The server could not be reached: ' + err.message, 'error');
        setState('logged-out');
      }
    );
  }

  function setProjectsState(state, note) {
    $('projects').setAttribute('data-state', state);
    var el = $('projects-note');
    el.textContent = note || '';
    el.hidden = !note;
  }

  function loadProjects() {
    setProjectsState('loading');
    return api('GET', '/api/projects').then(
      function (res) {
        if (res.status === 200 && res.body && Array.isArray(res.body.projects)) {
          renderProjects(res.body.projects);
          setProjectsState('ready');
        } else if (notAvailable(res)) {
          $('projects').textContent = '';
          setProjectsState(
            'unavailable',
            'Projects are not available on this server yet (it answered HTTP ' + res.status +
              ' to ' + BACKEND + '/api/projects).'
          );
        } else if (res.status === 401) {
          sessionEnded();
        } else {
          setProjectsState('error', 'Could not load your projects: ' + errorText(res));
        }
      },
      function (err) {
        setProjectsState('error', 'Could not load your projects: ' + err.message);
      }
    );
  }

  function sessionEnded() {
    setToken(null);
    setState('logged-out');
    showMessage('Your session has ended. Please log in again.', 'info');
  }

  // The filename the server proposes in Content-Disposition, if any.
  function filenameOf(response) {
    var cd = response.headers.get('Content-Disposition') || '';
    var star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(cd);
    if (star) {
      try {
        return decodeURIComponent(star[1]);
      } catch (e) {
        /* fall through to the plain form */
      }
    }
    var plain = /filename\s*=\s*"([^"]*)"/i.exec(cd) || /filename\s*=\s*([^;]+)/i.exec(cd);
    return plain ? plain[1].trim() : null;
  }

  // Downloads need the token, which a plain link can't send: fetch the file
  // and hand it to the browser as a blob URL.
  function download(p, button) {
    button.disabled = true;
    clearMessage();
    api('GET', '/api/projects/' + encodeURIComponent(p.id) + '/download', { raw: true })
      .then(function (res) {
        if (res.status !== 200) {
          showMessage('Download of “' + p.title + '” failed: ' + errorText(res), 'error');
          return null;
        }
        var name = filenameOf(res.response) ||
          String(p.title || 'project').replace(/[\s\/\\]+/g, '_') + '.sb3';
        return res.response.blob().then(function (blob) {
          var url = URL.createObjectURL(blob);
          var a = element('a');
          a.href = url;
          a.download = name;
          a.hidden = true;
          document.body.appendChild(a);
          a.click();
          a.remove();
          // Long enough for the browser to start saving it.
          setTimeout(function () {
            URL.revokeObjectURL(url);
          }, 60000);
        });
      })
      .catch(function (err) {
        showMessage('Download failed: ' + err.message, 'error');
      })
      .then(function () {
        button.disabled = false;
      });
  }

  function upload(event) {
    event.preventDefault();
    var file = $('upload-file').files[0];
    if (!file) {
      showMessage('Choose a Scratch file (.sb3) first.', 'error');
      return;
    }
    var title = $('upload-title').value.trim() || file.name.replace(/\.sb3$/i, '');
    var form = new FormData();
    form.append('project_file', file, file.name);
    var button = $('upload-button');
    button.disabled = true;
    showMessage('Uploading “' + title + '”…', 'info');
    api('POST', '/api/projects?title=' + encodeURIComponent(title), { body: form })
      .then(function (res) {
        if (res.status === 200 || res.status === 201) {
          showMessage('Uploaded “' + ((res.body && res.body.title) || title) + '”.', 'ok');
          $('upload-form').reset();
          return loadProjects();
        }
        if (notAvailable(res)) {
          showMessage('This server can not store projects yet (HTTP ' + res.status + ').', 'error');
        } else if (res.status === 401) {
          sessionEnded();
        } else {
          showMessage('Upload failed: ' + errorText(res), 'error');
        }
      })
      .catch(function (err) {
        showMessage('Upload failed: ' + err.message, 'error');
      })
      .then(function () {
        button.disabled = false;
      });
  }

  function login() {
    window.location.href = BACKEND + '/login';
  }

  function logout() {
    $('logout').disabled = true;
    api('POST', '/logout')
      .then(
        function (res) {
          if (res.status === 200 || res.status === 400 || res.status === 401) {
            showMessage('You are logged out.', 'ok');
          } else {
            showMessage('Logged out here, but the server answered: ' + errorText(res), 'error');
          }
        },
        function (err) {
          showMessage('Logged out here, but the server could not be reached: ' + err.message, 'error');
        }
      )
      .then(function () {
        setToken(null);
        $('projects').textContent = '';
        $('logout').disabled = false;
        setState('logged-out');
      });
  }

  function checkServer() {
    var el = $('server-status');
    api('GET', '/api/status').then(
      function (res) {
        if (res.status === 200 && res.body && res.body.status === 'ok') {
          el.textContent = 'Server is running.';
          el.className = 'ok';
        } else {
          el.textContent = 'Server problem: ' + errorText(res);
          el.className = 'error';
        }
      },
      function () {
        el.textContent = 'The server can not be reached.';
        el.className = 'error';
      }
    );
  }

  // ------------------------------------------------------------ start

  function start() {
    $('login').addEventListener('click', login);
    $('login-big').addEventListener('click', login);
    $('logout').addEventListener('click', logout);
    $('upload-form').addEventListener('submit', upload);

    var found = takeParamsFromUrl();
    if (found.error) {
      showMessage('Login did not work: ' + found.error, 'error');
    }
    checkServer();
    loadSession();
  }

  start();
})();
