/*
 * worker.c — the life of a worker process and the path of one request:
 * accept → per-request arena → parse → route → (auth) → handler → finish →
 * scoreboard, metrics and access log. The worker accepts connections
 * itself (epoll with EPOLLEXCLUSIVE on the shared listening socket plus a
 * self-pipe for signals), so a graceful stop can never be lost in a window
 * between checking a flag and blocking in accept().
 */
#include "worker.h"
#include "db.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "session.h"
#include "util.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <time.h>
#include <magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE_TICK_MS 10000 /* idle this long → WAL checkpoint */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reopen_requested;
static int sig_pipe[2] = {-1, -1};
static bool test_routes_enabled;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGQUIT)
        stop_requested = 1;
    else if (sig == SIGUSR1)
        reopen_requested = 1;
    char c = (char)sig;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

static void setup_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        fatal("worker: pipe2");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL); /* the master reloads; it tells us to stop with QUIT */
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL; /* TERM/INT: fast stop is dying at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* "scheme://host[:port]" of FRONTEND_URL: browsers compare Origin exactly. */
static char *origin_of(const char *url)
{
    if (!url || !*url)
        return NULL;
    const char *p = strstr(url, "://");
    if (!p)
        return xstrdup(url);
    const char *end = strchr(p + 3, '/');
    return end ? xstrndup(url, (size_t)(end - url)) : xstrdup(url);
}

static void set_current(struct sb_slot *slot, const char *method, const char *path)
{
    snprintf(slot->current, sizeof slot->current, "%s %s", method ? method : "-",
             path ? path : "-");
}

static void cors_preflight(struct request *r)
{
    resp_header(r, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    resp_header(r, "Access-Control-Allow-Headers",
                "Authorization, X-Session-ID, Content-Type, If-Match");
    resp_header(r, "Access-Control-Max-Age", "86400");
    resp_empty(r, 204);
}

void worker_dispatch(struct request *r)
{
    struct server *srv = r->srv;
    if (!r->path) {
        req_drain_body(r);
        resp_err(r, ERR_NOT_FOUND, NULL);
        return;
    }
    if (strcmp(r->method, "OPTIONS") == 0) {
        req_drain_body(r);
        cors_preflight(r);
        return;
    }
    int m = router_match(s4s_routes, s4s_routes_count, r->method, r->path, &r->match);
    if (m == ROUTE_FOUND && strncmp(r->path, "/_test/", 7) == 0 && !test_routes_enabled)
        m = ROUTE_NOT_FOUND;
    if (m == ROUTE_NOT_FOUND) {
        req_drain_body(r);
        resp_err(r, ERR_NOT_FOUND, NULL);
        return;
    }
    if (m == ROUTE_BAD_METHOD) {
        req_drain_body(r);
        resp_header(r, "Allow", r->match.allow);
        resp_err(r, ERR_BAD_METHOD, NULL);
        return;
    }
    r->route_index = r->match.index;
    if (r->content_length > 0 && (uint64_t)r->content_length > srv->cfg->max_content_length) {
        req_drain_body(r);
        char msg[96];
        snprintf(msg, sizeof msg, "Request body too large (limit %llu bytes)",
                 (unsigned long long)srv->cfg->max_content_length);
        resp_err(r, ERR_TOO_LARGE, msg);
        return;
    }
    enum auth_mode am = s4s_routes[r->match.index].auth;
    if (am != AUTH_NONE) {
        int st = sess_resolve(r);
        if (am == AUTH_REQUIRED && st != SESS_OK) {
            req_drain_body(r);
            auth_fail(r, st);
            return;
        }
    }
    s4s_routes[r->match.index].handler(r);
    if (!r->head_sent) {
        log_errx("handler for %s %s sent no response", r->method, r->path);
        resp_err(r, ERR_INTERNAL, NULL);
    }
}

static void open_resources(struct server *srv, struct config *cfg, struct scoreboard *sb)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->sb = sb;
    if (blob_store_open(&srv->blobs, cfg->data_dir) < 0) {
        log_err("worker: opening blob store in %s", cfg->data_dir);
        exit(WORKER_EXIT_STARTUP);
    }
    char *dbpath = cfg_sqlite_path(cfg);
    char err[256];
    struct db_options opt = {.busy_timeout_ms = cfg->db_busy_timeout_ms,
                             .synchronous_full = true,
                             .busy_retry_counter = &sb->db_busy_retries};
    if (db_open(dbpath ? dbpath : cfg->database_uri, &opt, &srv->db, err, sizeof err) != DB_OK) {
        log_errx("worker: %s", err);
        free(dbpath);
        exit(WORKER_EXIT_STARTUP);
    }
    free(dbpath);
    magic_t mg = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!mg || magic_load(mg, NULL) != 0) {
        log_errx("worker: libmagic: %s", mg ? magic_error(mg) : "magic_open failed");
        exit(WORKER_EXIT_STARTUP);
    }
    /* libmagic reads up to 7 MiB of a file by default; every type we check is
     * decided in the first bytes, so bound a worker's peak memory. */
    size_t magic_bytes = 1024 * 1024;
    if (magic_setparam(mg, MAGIC_PARAM_BYTES_MAX, &magic_bytes) != 0)
        log_warnx("worker: libmagic: cannot bound bytes read: %s", magic_error(mg));
    srv->magic = mg;
    srv->cors_origin = cfg->cors ? origin_of(cfg->frontend_url) : NULL;
}

static void close_resources(struct server *srv)
{
    if (srv->magic)
        magic_close(srv->magic);
    db_close(srv->db);
    blob_store_close(&srv->blobs);
    free(srv->cors_origin);
}

/* Wait for a connection or a signal. Returns an accepted fd, or -1. */
static int wait_accept(int ep, int listen_fd, bool *idle_tick, bool busy)
{
    struct epoll_event ev[2];
    *idle_tick = false;
    /* Right after a request, under load, the next connection is usually
     * queued already: take it (the socket is non-blocking) without a round
     * through epoll_wait, which often means a sleep and a wakeup. Signals
     * only set flags, which the request loop checks before coming here. */
    if (busy && !stop_requested) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
    }
    int n = epoll_wait(ep, ev, 2, IDLE_TICK_MS);
    if (n < 0) {
        if (errno != EINTR)
            log_warn("epoll_wait");
        return -1;
    }
    if (n == 0) {
        /* A cheap safety net: a connection whose wakeup was lost (its waker
         * was SIGKILLed before accepting) waits at most one tick. */
        *idle_tick = true;
        return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    }
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == sig_pipe[0]) {
            char buf[64];
            while (read(sig_pipe[0], buf, sizeof buf) > 0)
                ;
        }
    }
    /* Accept even when a graceful stop was just requested: EPOLLEXCLUSIVE
     * woke this worker alone for the new connection, so leaving it queued
     * would leave it waiting until the next arrival wakes another worker
     * (a lone client hung across SIGHUP that way). Serving it is part of
     * finishing gracefully; the loop then ends. */
    /* The accepted socket is blocking: libfcgi reads it with plain read(). */
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
        errno != ECONNABORTED)
        log_warn("accept");
    return fd;
}

void worker_main(struct config *cfg, struct listener *l, struct scoreboard *sb, int slot_index,
                 int generation)
{
    log_set_role("worker");
    /* FCGX_Init installs its own SIGTERM/SIGPIPE handlers where they are default;
     * run it first so setup_signals has the last word (TERM must kill at once). */
    if (FCGX_Init() != 0) {
        log_errx("worker: FCGX_Init failed");
        exit(WORKER_EXIT_STARTUP);
    }
    setup_signals();
    test_routes_enabled = getenv("S4S_TEST_ROUTES") && strcmp(getenv("S4S_TEST_ROUTES"), "1") == 0;
    struct sb_slot *slot = &sb->slots[slot_index];
    if (test_routes_enabled) {
        /* Test hook: a worker that dies at start, to exercise the master's backoff. */
        char *flag = xasprintf("%s/.test-fail-start", cfg->data_dir);
        bool fail = access(flag, F_OK) == 0;
        free(flag);
        if (fail) {
            log_errx("worker: failing at start (test hook)");
            exit(WORKER_EXIT_STARTUP);
        }
    }
    struct server srv;
    open_resources(&srv, cfg, sb);
    srv.slot = slot_index;
    srv.listen_fd = l->fd;
    srv.listen_is_unix = l->is_unix;
    (void)generation;

    FCGX_Request fcgx;
    if (FCGX_InitRequest(&fcgx, l->fd, 0) != 0) {
        log_errx("worker: FCGX_InitRequest failed");
        exit(WORKER_EXIT_STARTUP);
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        fatal("worker: epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = l->fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) < 0)
        fatal("worker: epoll_ctl listen");
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = sig_pipe[0]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sig_pipe[0], &sev) < 0)
        fatal("worker: epoll_ctl pipe");

    arena_t arena;
    arena_init(&arena, 64 * 1024);
    __atomic_store_n(&slot->state, SB_IDLE, __ATOMIC_RELEASE);
    uint64_t served = 0;
    bool busy = false; /* the last round served a request */

    while (!stop_requested) {
        if (reopen_requested) {
            reopen_requested = 0;
            if (log_reopen() < 0)
                log_warn("reopening log file");
        }
        if (cfg->max_requests > 0 && served >= (uint64_t)cfg->max_requests)
            break;
        bool idle_tick;
        int fd = wait_accept(ep, l->fd, &idle_tick, busy);
        busy = false;
        if (fd < 0) {
            if (idle_tick)
                db_checkpoint(srv.db);
            continue;
        }
        /* Hand our accepted connection to libfcgi: with ipcFd set and
         * keepConnection on, FCGX_Accept_r reads the request from it instead
         * of calling accept() itself. */
        fcgx.ipcFd = fd;
        fcgx.keepConnection = 1;
        int64_t t0_ms = now_mono_ms();
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        __atomic_store_n(&slot->request_start_ms, t0_ms, __ATOMIC_RELAXED);
        snprintf(slot->current, sizeof slot->current, "(reading request)");
        __atomic_store_n(&slot->state, SB_BUSY, __ATOMIC_RELEASE);
        if (FCGX_Accept_r(&fcgx) < 0) {
            /* The web server closed before sending a request: nothing to answer. */
            if (fcgx.ipcFd >= 0) {
                close(fcgx.ipcFd);
                fcgx.ipcFd = -1;
            }
            __atomic_store_n(&slot->state, SB_IDLE, __ATOMIC_RELEASE);
            continue;
        }
        SB_ADD(sb->accepted, 1);

        struct request r;
        int bad = req_init(&r, &fcgx, &arena, &srv);
        set_current(slot, r.method, r.path ? r.path : req_param(&r, "REQUEST_URI"));
        if (bad) {
            req_drain_body(&r);
            resp_err(&r, ERR_BAD_REQUEST, "Invalid request path");
        } else {
            worker_dispatch(&r);
        }
        /* Whatever the handler did, consume the body: answering without
         * reading stdin makes nginx report 502 instead of our answer. */
        req_drain_body(&r);
        SB_ADD(sb->bytes_uploaded, r.body_read);
        const char *log_path = r.path ? r.path : req_param(&r, "REQUEST_URI");
        char *log_path_copy = arena_strdup(&arena, log_path ? log_path : "-");

        fcgx.keepConnection =
            0; /* one request per connection: a kept connection would pin this worker */
        /* With the request read to its end nothing more can arrive, so skip
         * libfcgi's lingering close (shutdown, then wait up to 2 s for the web
         * server to close first, which exists to avoid a TCP reset over unread
         * input): that wait idled the worker for a scheduling round trip of
         * nginx on every request. */
        if (r.body_eof)
            FCGX_Detach(&fcgx);
        FCGX_Finish_r(&fcgx);

        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        sb_count_request(sb, r.route_index, r.status, us);
        if (r.status == 409)
            SB_ADD(sb->conflicts, 1);
        log_access(r.method, log_path_copy, r.status, (unsigned long long)r.bytes_out, us,
                   r.user_id);
        served++;
        busy = true;
        SB_ADD(slot->requests, 1);
        slot->current[0] = '\0';
        __atomic_store_n(&slot->state, SB_IDLE, __ATOMIC_RELEASE);
        arena_reset(&arena);
    }
    __atomic_store_n(&slot->state, SB_STOPPING, __ATOMIC_RELEASE);
    arena_free(&arena);
    close(ep);
    close_resources(&srv);
    exit(WORKER_EXIT_OK);
}
