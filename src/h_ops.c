/*
 * h_ops.c — operational endpoints: /api/status (health), /status (the
 * process manager's scoreboard, JSON or text) and /metrics (Prometheus),
 * plus the test-only routes the suite uses to make a worker hang or to
 * exercise the upload pipeline on its own.
 */
#include "db.h"
#include "listen.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "scoreboard.h"
#include "upload.h"
#include "util.h"

#include <dirent.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void h_api_status(struct request *r)
{
    char ts[48];
    iso8601_now(ts, sizeof ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "timestamp", ts);
    resp_json(r, 200, o);
}

/* Compare secrets in time independent of where they differ. */
static bool token_equal(const char *given, const char *secret)
{
    size_t n = strlen(secret);
    return strlen(given) == n && CRYPTO_memcmp(given, secret, n) == 0;
}

/* Loopback, or the STATUS_TOKEN as a bearer token or ?token=. */
static bool ops_allowed(struct request *r)
{
    const char *token = r->srv->cfg->status_token;
    if (token && *token) {
        const char *q = req_query(r, "token");
        const char *auth = req_param(r, "HTTP_AUTHORIZATION");
        if (q && token_equal(q, token))
            return true;
        if (auth && strncmp(auth, "Bearer ", 7) == 0 && token_equal(auth + 7, token))
            return true;
    }
    return req_from_loopback(r);
}

static const char *state_name(int st)
{
    switch (st) {
    case SB_STARTING:
        return "starting";
    case SB_IDLE:
        return "idle";
    case SB_BUSY:
        return "busy";
    case SB_STOPPING:
        return "stopping";
    default:
        return "free";
    }
}

static long rss_kb_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long size, resident;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    if (n != 2)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long listen_queue(struct request *r)
{
    struct listener l = {.fd = r->srv->listen_fd, .is_unix = r->srv->listen_is_unix};
    return listen_queue_length(&l);
}

void h_status(struct request *r)
{
    if (!ops_allowed(r)) {
        resp_err(r, ERR_FORBIDDEN, NULL);
        return;
    }
    struct scoreboard *sb = r->srv->sb;
    int64_t now = now_mono_ms();
    long queue = listen_queue(r);
    const char *fmt = req_query(r, "format");
    bool text = fmt && strcmp(fmt, "text") == 0;
    int busy = 0, idle = 0;
    cJSON *workers = cJSON_CreateArray();
    char *textbuf = NULL;
    size_t textlen = 0;
    FILE *tf = text ? open_memstream(&textbuf, &textlen) : NULL;
    if (text && !tf) {
        resp_err(r, ERR_INTERNAL, NULL);
        cJSON_Delete(workers);
        return;
    }
    if (tf)
        fprintf(tf, "%-8s %-9s %-4s %10s %10s %s\n", "pid", "state", "gen", "requests", "age_ms",
                "current");
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        struct sb_slot *s = &sb->slots[i];
        int st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (st == SB_FREE || s->pid <= 0)
            continue;
        if (st == SB_BUSY)
            busy++;
        else if (st == SB_IDLE)
            idle++;
        char current[SB_CURRENT_LEN];
        memcpy(current, s->current, sizeof current);
        current[sizeof current - 1] = '\0';
        int64_t age = st == SB_BUSY ? now - s->request_start_ms : 0;
        cJSON *w = cJSON_CreateObject();
        cJSON_AddNumberToObject(w, "pid", s->pid);
        cJSON_AddStringToObject(w, "state", state_name(st));
        cJSON_AddNumberToObject(w, "generation", s->generation);
        cJSON_AddNumberToObject(w, "requests", (double)SB_LOAD(s->requests));
        if (st == SB_BUSY)
            cJSON_AddStringToObject(w, "current", current);
        else
            cJSON_AddNullToObject(w, "current");
        cJSON_AddNumberToObject(w, "age_ms", (double)age);
        cJSON_AddNumberToObject(w, "uptime_ms", (double)(now - s->started_ms));
        cJSON_AddNumberToObject(w, "rss_kb", (double)rss_kb_of(s->pid));
        cJSON_AddItemToArray(workers, w);
        if (tf)
            fprintf(tf, "%-8d %-9s %-4d %10llu %10lld %s\n", (int)s->pid, state_name(st),
                    s->generation, (unsigned long long)SB_LOAD(s->requests), (long long)age,
                    st == SB_BUSY ? current : "-");
    }
    char started[32];
    time_t t = (time_t)sb->started_at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    if (tf) {
        fprintf(tf,
                "\naccepted: %llu\nlisten_queue: %ld\nactive: %d\nidle: %d\nrestarts: %llu\n"
                "timeouts: %llu\nrecycled: %llu\nreloads: %llu\nstarted_at: %s\n",
                (unsigned long long)SB_LOAD(sb->accepted), queue, busy, idle,
                (unsigned long long)SB_LOAD(sb->restarts),
                (unsigned long long)SB_LOAD(sb->timeouts),
                (unsigned long long)SB_LOAD(sb->recycled), (unsigned long long)SB_LOAD(sb->reloads),
                started);
        fclose(tf);
        cJSON_Delete(workers);
        resp_header(r, "Cache-Control", "no-store");
        resp_bytes(r, 200, "text/plain; charset=utf-8", textbuf, textlen);
        free(textbuf);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "workers", workers);
    cJSON_AddNumberToObject(o, "accepted", (double)SB_LOAD(sb->accepted));
    cJSON_AddNumberToObject(o, "listen_queue", (double)queue);
    cJSON_AddNumberToObject(o, "listen_backlog", r->srv->cfg->listen_backlog);
    cJSON_AddNumberToObject(o, "active", busy);
    cJSON_AddNumberToObject(o, "idle", idle);
    cJSON_AddStringToObject(o, "started_at", started);
    cJSON_AddNumberToObject(o, "restarts", (double)SB_LOAD(sb->restarts));
    cJSON_AddNumberToObject(o, "timeouts", (double)SB_LOAD(sb->timeouts));
    cJSON_AddNumberToObject(o, "recycled", (double)SB_LOAD(sb->recycled));
    cJSON_AddNumberToObject(o, "reloads", (double)SB_LOAD(sb->reloads));
    cJSON_AddNumberToObject(o, "generation", sb->generation);
    resp_json(r, 200, o);
}

/* Sum of blob sizes; walking the store is costly, so each worker caches it a minute. */
static long long blob_store_bytes(struct request *r)
{
    static long long cached = -1;
    static int64_t cached_at;
    int64_t now = now_mono_ms();
    if (cached >= 0 && now - cached_at < 60000)
        return cached;
    long long total = 0;
    DIR *top = opendir(r->srv->blobs.blobs_dir);
    if (!top)
        return -1;
    struct dirent *d;
    while ((d = readdir(top))) {
        if (d->d_name[0] == '.')
            continue;
        char *sub = arena_printf(r->arena, "%s/%s", r->srv->blobs.blobs_dir, d->d_name);
        DIR *dir = opendir(sub);
        if (!dir)
            continue;
        struct dirent *e;
        while ((e = readdir(dir))) {
            struct stat st;
            if (e->d_name[0] != '.' && fstatat(dirfd(dir), e->d_name, &st, 0) == 0)
                total += st.st_size;
        }
        closedir(dir);
    }
    closedir(top);
    cached = total;
    cached_at = now;
    return total;
}

void h_metrics(struct request *r)
{
    if (!ops_allowed(r)) {
        resp_err(r, ERR_FORBIDDEN, NULL);
        return;
    }
    static const int codes[] = {
#define X(c) c,
        SB_STATUS_CODES
#undef X
    };
    static const int64_t bounds[] = SB_LATENCY_BOUNDS_US;
    struct scoreboard *sb = r->srv->sb;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        resp_err(r, ERR_INTERNAL, NULL);
        return;
    }
    fprintf(f, "# HELP s4s_requests_total Requests answered, by route and status.\n"
               "# TYPE s4s_requests_total counter\n");
    for (size_t i = 0; i <= s4s_routes_count && i <= SB_MAX_ROUTES; i++) {
        size_t idx = i < s4s_routes_count ? i : SB_MAX_ROUTES;
        char route[160];
        if (i < s4s_routes_count)
            snprintf(route, sizeof route, "%s %s", s4s_routes[i].method, s4s_routes[i].pattern);
        else
            snprintf(route, sizeof route, "unrouted");
        struct sb_route_stats *rs = &sb->routes[idx];
        for (int s = 0; s < SB_NSTATUS; s++) {
            uint64_t n = SB_LOAD(rs->status[s]);
            if (n == 0)
                continue;
            if (s < SB_ST_OTHER)
                fprintf(f, "s4s_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route, codes[s],
                        (unsigned long long)n);
            else
                fprintf(f, "s4s_requests_total{route=\"%s\",status=\"other\"} %llu\n", route,
                        (unsigned long long)n);
        }
    }
    fprintf(f, "# HELP s4s_request_duration_seconds Time from accept to the end of the response.\n"
               "# TYPE s4s_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= s4s_routes_count && i <= SB_MAX_ROUTES; i++) {
        size_t idx = i < s4s_routes_count ? i : SB_MAX_ROUTES;
        struct sb_route_stats *rs = &sb->routes[idx];
        uint64_t count = 0;
        for (int b = 0; b < SB_NBUCKETS; b++)
            count += SB_LOAD(rs->latency[b]);
        if (count == 0)
            continue;
        char route[160];
        if (i < s4s_routes_count)
            snprintf(route, sizeof route, "%s %s", s4s_routes[i].method, s4s_routes[i].pattern);
        else
            snprintf(route, sizeof route, "unrouted");
        uint64_t cum = 0;
        for (int b = 0; b < SB_NBUCKETS; b++) {
            cum += SB_LOAD(rs->latency[b]);
            if (b < SB_NBUCKETS - 1)
                fprintf(f, "s4s_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                        route, (double)bounds[b] / 1e6, (unsigned long long)cum);
            else
                fprintf(f, "s4s_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                        route, (unsigned long long)cum);
        }
        fprintf(f, "s4s_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route,
                (double)SB_LOAD(rs->latency_sum_us) / 1e6);
        fprintf(f, "s4s_request_duration_seconds_count{route=\"%s\"} %llu\n", route,
                (unsigned long long)count);
    }
    int busy = 0, idle = 0;
    for (int i = 0; i < SB_MAX_SLOTS; i++) {
        int st = __atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE);
        if (sb->slots[i].pid <= 0)
            continue;
        busy += st == SB_BUSY;
        idle += st == SB_IDLE;
    }
    fprintf(f,
            "# HELP s4s_version_conflicts_total Project writes refused with 409.\n"
            "# TYPE s4s_version_conflicts_total counter\n"
            "s4s_version_conflicts_total %llu\n"
            "# HELP s4s_db_busy_retries_total Transactions retried: busy, locked, serialization.\n"
            "# TYPE s4s_db_busy_retries_total counter\n"
            "s4s_db_busy_retries_total %llu\n"
            "# HELP s4s_uploaded_bytes_total Request body bytes read.\n"
            "# TYPE s4s_uploaded_bytes_total counter\n"
            "s4s_uploaded_bytes_total %llu\n"
            "# HELP s4s_accepted_total Requests accepted.\n"
            "# TYPE s4s_accepted_total counter\n"
            "s4s_accepted_total %llu\n"
            "# HELP s4s_workers Worker processes by state.\n"
            "# TYPE s4s_workers gauge\n"
            "s4s_workers{state=\"busy\"} %d\n"
            "s4s_workers{state=\"idle\"} %d\n"
            "# HELP s4s_worker_restarts_total Workers respawned after dying or being killed.\n"
            "# TYPE s4s_worker_restarts_total counter\n"
            "s4s_worker_restarts_total %llu\n"
            "# HELP s4s_worker_timeouts_total Workers killed for exceeding REQUEST_TIMEOUT.\n"
            "# TYPE s4s_worker_timeouts_total counter\n"
            "s4s_worker_timeouts_total %llu\n"
            "# HELP s4s_listen_queue Connections waiting in the accept queue.\n"
            "# TYPE s4s_listen_queue gauge\n"
            "s4s_listen_queue %ld\n"
            "# HELP s4s_sqlite_wal_bytes Size of the SQLite write-ahead log.\n"
            "# TYPE s4s_sqlite_wal_bytes gauge\n"
            "s4s_sqlite_wal_bytes %lld\n"
            "# HELP s4s_blob_store_bytes Bytes in the blob store (refreshed each minute).\n"
            "# TYPE s4s_blob_store_bytes gauge\n"
            "s4s_blob_store_bytes %lld\n",
            (unsigned long long)SB_LOAD(sb->conflicts),
            (unsigned long long)SB_LOAD(sb->db_busy_retries),
            (unsigned long long)SB_LOAD(sb->bytes_uploaded),
            (unsigned long long)SB_LOAD(sb->accepted), busy, idle,
            (unsigned long long)SB_LOAD(sb->restarts), (unsigned long long)SB_LOAD(sb->timeouts),
            listen_queue(r), (long long)db_wal_size(r->srv->db), blob_store_bytes(r));
    fclose(f);
    resp_header(r, "Cache-Control", "no-store");
    resp_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
}

/* Test only: hold this worker busy for ?ms= milliseconds (REQUEST_TIMEOUT tests). */
void h_test_sleep(struct request *r)
{
    int64_t ms = 0;
    const char *q = req_query(r, "ms");
    if (!q || !parse_int64(q, 0, 600000, &ms)) {
        resp_err(r, ERR_BAD_REQUEST, "ms must be 0..600000");
        return;
    }
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0)
        ;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "slept_ms", (double)ms);
    cJSON_AddNumberToObject(o, "pid", getpid());
    resp_json(r, 200, o);
}

/* Test only: the streaming multipart pipeline on its own: every file part
 * is stored as a blob; answers what was stored. */
void h_test_upload(struct request *r)
{
    struct form form;
    const char *msg = NULL;
    int rc = upload_parse(r->arena, &r->srv->blobs, r->content_type, req_body_read, r,
                          r->srv->cfg->max_content_length, &form, &msg);
    switch (rc) {
    case UP_OK:
        break;
    case UP_ERR_TOO_LARGE:
        resp_err(r, ERR_TOO_LARGE, msg);
        return;
    case UP_ERR_NOSPACE:
        resp_err(r, ERR_NO_SPACE, msg);
        return;
    case UP_ERR_IO:
        resp_err(r, ERR_INTERNAL, msg);
        return;
    default:
        resp_err(r, ERR_BAD_REQUEST, msg);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    for (size_t i = 0; i < form.nfiles; i++) {
        struct form_file *ff = &form.files[i];
        if (blob_writer_commit(&r->srv->blobs, &ff->w) != BLOB_OK) {
            form_cleanup(&form);
            cJSON_Delete(o);
            resp_err(r, ERR_INTERNAL, "storing the upload failed");
            return;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", ff->name);
        cJSON_AddStringToObject(f, "filename", ff->filename);
        cJSON_AddNumberToObject(f, "size", (double)ff->w.size);
        cJSON_AddStringToObject(f, "sha256", ff->w.sha256);
        cJSON_AddStringToObject(f, "md5", ff->w.md5);
        cJSON_AddItemToArray(files, f);
    }
    cJSON *fields = cJSON_AddObjectToObject(o, "fields");
    for (size_t i = 0; i < form.nfields; i++)
        cJSON_AddStringToObject(fields, form.fields[i].name, form.fields[i].value);
    form_cleanup(&form);
    resp_json(r, 200, o);
}
