/*
 * pm.c — the master's loop. Signals arrive through a signalfd (blocked
 * otherwise), so none is handled in an async context and a burst of
 * SIGCHLD during a reload is just one readable fd: every wake-up reaps
 * with waitpid(WNOHANG) until nothing is left, so no zombie survives.
 */
#include "pm.h"
#include "db.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define TICK_MS 100
#define FAST_FAIL_MS 2000 /* a worker dying sooner than this "died at start" */
#define BACKOFF_MAX_MS 30000
#define TERM_GRACE_MS 2000 /* after TERM, how long before KILL */
#define FAST_STOP_GRACE_MS 1000

enum stop_stage { STOP_NONE = 0, STOP_QUIT_SENT, STOP_TERM_SENT, STOP_KILL_SENT };

struct child {
    pid_t pid;
    int generation;
    int64_t started_ms;
    int stage;           /* enum stop_stage */
    int64_t deadline_ms; /* when to escalate to the next stage */
    bool timed_out;
};

static struct child children[SB_MAX_SLOTS];
static int sigfd = -1;
static int generation = 1;
static int fast_failures;
static int64_t next_spawn_ms;

int pm_load_config(const struct pm_options *opt, struct config *out, char *err, size_t errlen)
{
    extern char **environ;
    if (cfg_load(out, opt->config_path, environ, err, errlen) < 0)
        return -1;
    for (int i = 0; i < opt->noverrides; i++) {
        if (cfg_set(out, opt->overrides[i].key, opt->overrides[i].value, err, errlen) < 0) {
            cfg_free(out);
            return -1;
        }
    }
    if (cfg_validate(out, err, errlen) < 0) {
        cfg_free(out);
        return -1;
    }
    if (!out->secret_key || !*out->secret_key) {
        /* Sessions' sealed provider tokens and PKCE verifiers need a key. Without
         * SECRET_KEY one is made per master start and kept across reloads; after
         * a restart, renewals of existing sessions fail (users log in again). */
        static char generated[65];
        if (!generated[0]) {
            unsigned char raw[32];
            random_bytes(raw, sizeof raw);
            hex_encode(raw, sizeof raw, generated);
            log_warnx("SECRET_KEY is not set: using a random key until the server restarts");
        }
        free(out->secret_key);
        out->secret_key = xstrdup(generated);
    }
    return 0;
}

int pm_migrate(const struct config *cfg)
{
    char err[256];
    char *path = cfg_sqlite_path(cfg);
    const char *uri = path ? path : cfg->database_uri;
    struct db *db;
    struct db_options opt = {.busy_timeout_ms = cfg->db_busy_timeout_ms, .synchronous_full = true};
    if (db_open(uri, &opt, &db, err, sizeof err) != DB_OK) {
        log_errx("opening database: %s", err);
        free(path);
        return -1;
    }
    char *shown = db_uri_display(uri);
    log_info("database %s opened (%s)", shown, db_driver_name(db));
    free(shown);
    int applied = 0;
    int rc = db_migrate(db, &applied, err, sizeof err);
    if (rc != DB_OK)
        log_errx("migrations failed: %s", err);
    else if (applied)
        log_info("applied %d migration(s)", applied);
    else
        log_info("schema is up to date");
    db_close(db);
    free(path);
    return rc == DB_OK ? 0 : -1;
}

static int live_children(void)
{
    int n = 0;
    for (int i = 0; i < SB_MAX_SLOTS; i++)
        n += children[i].pid > 0;
    return n;
}

static int spawn(struct config *cfg, struct listener *l, struct scoreboard *sb, int slot)
{
    struct sb_slot *s = &sb->slots[slot];
    memset(s, 0, sizeof *s);
    s->generation = generation;
    s->started_ms = now_mono_ms();
    __atomic_store_n(&s->state, SB_STARTING, __ATOMIC_RELEASE);
    pid_t pid = fork();
    if (pid < 0) {
        log_err("fork");
        __atomic_store_n(&s->state, SB_FREE, __ATOMIC_RELEASE);
        return -1;
    }
    if (pid == 0) {
        close(sigfd);
        s->pid = getpid();
        worker_main(cfg, l, sb, slot, generation);
    }
    s->pid = pid;
    children[slot] =
        (struct child){.pid = pid, .generation = generation, .started_ms = s->started_ms};
    log_debug("worker %d started (slot %d, generation %d)", (int)pid, slot, generation);
    return 0;
}

/* Keep cfg->workers workers of the current generation running. */
static void spawn_missing(struct config *cfg, struct listener *l, struct scoreboard *sb,
                          int64_t now)
{
    if (now < next_spawn_ms)
        return;
    int current = 0;
    for (int i = 0; i < SB_MAX_SLOTS; i++)
        if (children[i].pid > 0 && children[i].generation == generation &&
            children[i].stage == STOP_NONE)
            current++;
    for (int i = 0; i < SB_MAX_SLOTS && current < cfg->workers; i++) {
        if (children[i].pid > 0 ||
            __atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) != SB_FREE)
            continue;
        if (spawn(cfg, l, sb, i) == 0)
            current++;
        else {
            next_spawn_ms = now + 1000;
            return;
        }
    }
}

static void stop_child(struct child *c, int sig, int64_t now, int64_t grace_ms)
{
    if (c->pid <= 0)
        return;
    if (kill(c->pid, sig) < 0 && errno != ESRCH)
        log_warn("kill %d", (int)c->pid);
    c->stage = sig == SIGQUIT ? STOP_QUIT_SENT : sig == SIGTERM ? STOP_TERM_SENT : STOP_KILL_SENT;
    c->deadline_ms = now + grace_ms;
}

/* QUIT → TERM → KILL for children that overstay. */
static void escalate(int64_t now)
{
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        struct child *c = &children[i];
        if (c->pid <= 0 || c->stage == STOP_NONE || now < c->deadline_ms)
            continue;
        if (c->stage == STOP_QUIT_SENT) {
            log_warnx("worker %d did not stop in time; sending TERM", (int)c->pid);
            stop_child(c, SIGTERM, now, TERM_GRACE_MS);
        } else if (c->stage == STOP_TERM_SENT) {
            log_warnx("worker %d ignored TERM; sending KILL", (int)c->pid);
            stop_child(c, SIGKILL, now, 1000);
        }
    }
}

static void check_timeouts(const struct config *cfg, struct scoreboard *sb, int64_t now)
{
    if (cfg->request_timeout <= 0)
        return;
    int64_t limit = (int64_t)cfg->request_timeout * 1000;
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        struct child *c = &children[i];
        struct sb_slot *s = &sb->slots[i];
        if (c->pid <= 0 || c->timed_out || __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SB_BUSY)
            continue;
        int64_t age = now - __atomic_load_n(&s->request_start_ms, __ATOMIC_RELAXED);
        if (age <= limit)
            continue;
        char current[SB_CURRENT_LEN];
        memcpy(current, s->current, sizeof current);
        current[sizeof current - 1] = '\0';
        log_errx("worker %d exceeded REQUEST_TIMEOUT (%ds) on \"%s\" after %lld ms; killing it",
                 (int)c->pid, cfg->request_timeout, current, (long long)age);
        c->timed_out = true;
        SB_ADD(sb->timeouts, 1);
        stop_child(c, SIGKILL, now, 1000);
    }
}

static void reap(struct scoreboard *sb, bool stopping, int64_t now)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            if (pid < 0 && errno != ECHILD && errno != EINTR)
                log_warn("waitpid");
            return;
        }
        int i;
        for (i = 0; i < SB_MAX_SLOTS; i++)
            if (children[i].pid == pid)
                break;
        if (i == SB_MAX_SLOTS) {
            log_debug("reaped unknown child %d", (int)pid);
            continue;
        }
        struct child c = children[i];
        /* "Died at start" means it never got ready to serve, not merely that it
         * was young: a healthy worker killed from outside is not backed off. */
        bool never_ready = __atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) == SB_STARTING;
        memset(&children[i], 0, sizeof children[i]);
        memset(&sb->slots[i], 0, sizeof sb->slots[i]);
        __atomic_store_n(&sb->slots[i].state, SB_FREE, __ATOMIC_RELEASE);

        bool asked = c.stage != STOP_NONE && !c.timed_out;
        if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_OK) {
            if (!asked && !stopping) {
                SB_ADD(sb->recycled, 1);
                log_debug("worker %d recycled", (int)pid);
            }
            continue;
        }
        if (asked || stopping)
            continue;
        SB_ADD(sb->restarts, 1);
        if (WIFSIGNALED(status))
            log_warnx("worker %d killed by signal %d%s", (int)pid, WTERMSIG(status),
                      c.timed_out ? " (request timeout)" : "");
        else
            log_warnx("worker %d exited with status %d", (int)pid, WEXITSTATUS(status));
        bool startup_failure =
            (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_STARTUP) || never_ready;
        if (!c.timed_out && startup_failure && now - c.started_ms < FAST_FAIL_MS) {
            fast_failures++;
            int64_t delay = 100LL << (fast_failures < 9 ? fast_failures : 9);
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            next_spawn_ms = now + delay;
            log_warnx("worker died at start (%d in a row); next start in %lld ms", fast_failures,
                      (long long)delay);
        } else {
            fast_failures = 0;
        }
    }
}

static void begin_stop(bool graceful, const struct config *cfg, int64_t now)
{
    log_info("%s stop: %d worker(s) to stop", graceful ? "graceful" : "fast", live_children());
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        struct child *c = &children[i];
        if (c->pid <= 0)
            continue;
        if (graceful) {
            if (c->stage == STOP_NONE)
                stop_child(c, SIGQUIT, now, (int64_t)cfg->stop_timeout * 1000);
        } else if (c->stage < STOP_TERM_SENT) {
            stop_child(c, SIGTERM, now, FAST_STOP_GRACE_MS);
        }
    }
}

static void reload(struct config **cfgp, struct listener *l, struct scoreboard *sb,
                   const struct pm_options *opt, int64_t now)
{
    log_info("reloading configuration");
    struct config *fresh = xcalloc(1, sizeof *fresh);
    char err[512];
    if (pm_load_config(opt, fresh, err, sizeof err) < 0) {
        log_errx("reload failed, keeping the running configuration: %s", err);
        free(fresh);
        return;
    }
    if (pm_migrate(fresh) < 0) {
        log_errx("reload failed (migrations), keeping the running configuration");
        cfg_free(fresh);
        free(fresh);
        return;
    }
    struct config *old = *cfgp;
    if ((old->listen || fresh->listen) &&
        (!old->listen || !fresh->listen || strcmp(old->listen, fresh->listen) != 0))
        log_warnx("LISTEN changed: a new address needs a restart; keeping %s", l->display);
    log_set_level(fresh->log_level);
    if ((fresh->log_file && (!old->log_file || strcmp(fresh->log_file, old->log_file) != 0)) &&
        log_open_file(fresh->log_file) < 0)
        log_warn("opening LOG_FILE %s", fresh->log_file);
    cfg_free(old);
    free(old);
    *cfgp = fresh;
    generation++;
    sb->generation = generation;
    SB_ADD(sb->reloads, 1);
    next_spawn_ms = 0;
    fast_failures = 0;
    /* New workers first, then the old ones finish what they hold and leave:
     * the listening socket never lacks an acceptor, so no request fails. */
    spawn_missing(fresh, l, sb, now);
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        struct child *c = &children[i];
        if (c->pid > 0 && c->generation != generation && c->stage == STOP_NONE)
            stop_child(c, SIGQUIT, now, (int64_t)fresh->stop_timeout * 1000);
    }
    log_info("reloaded: generation %d with %d worker(s)", generation, fresh->workers);
}

static void forward_signal(int sig)
{
    for (int i = 0; i < SB_MAX_SLOTS; i++)
        if (children[i].pid > 0)
            kill(children[i].pid, sig);
}

int pm_run(struct config *cfg, struct listener *l, struct scoreboard *sb,
           const struct pm_options *opt)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGQUIT, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD};
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
        sigaddset(&set, sigs[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        fatal("sigprocmask");
    sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        fatal("signalfd");
    signal(SIGPIPE, SIG_IGN);

    struct config *current = xcalloc(1, sizeof *current);
    *current = *cfg; /* take ownership of the strings */
    memset(cfg, 0, sizeof *cfg);
    sb->generation = generation;
    bool stopping = false;
    int64_t now = now_mono_ms();
    spawn_missing(current, l, sb, now);
    log_info("master %d: listening on %s, %d worker(s), generation %d", (int)getpid(), l->display,
             current->workers, generation);

    for (;;) {
        now = now_mono_ms();
        reap(sb, stopping, now);
        if (stopping && live_children() == 0)
            break;
        if (!stopping)
            spawn_missing(current, l, sb, now);
        check_timeouts(current, sb, now);
        escalate(now);

        struct pollfd pfd = {.fd = sigfd, .events = POLLIN};
        int n = poll(&pfd, 1, TICK_MS);
        if (n < 0 && errno != EINTR)
            log_warn("poll");
        if (n <= 0)
            continue;
        struct signalfd_siginfo si;
        while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            now = now_mono_ms();
            switch (si.ssi_signo) {
            case SIGCHLD:
                break; /* reaped at the top of the loop */
            case SIGQUIT:
                stopping = true;
                begin_stop(true, current, now);
                break;
            case SIGTERM:
            case SIGINT:
                stopping = true;
                begin_stop(false, current, now);
                break;
            case SIGHUP:
                if (!stopping)
                    reload(&current, l, sb, opt, now);
                break;
            case SIGUSR1:
                if (log_reopen() < 0)
                    log_warn("reopening log file");
                else
                    log_info("log file reopened");
                forward_signal(SIGUSR1);
                break;
            default:
                break;
            }
        }
    }
    log_info("master %d: all workers stopped, exiting", (int)getpid());
    close(sigfd);
    cfg_free(current);
    free(current);
    return 0;
}
