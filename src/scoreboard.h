/*
 * scoreboard.h — the shared-memory page the master and every worker see:
 * one slot per worker (pid, state, requests served, current request and
 * when it started) and the server-wide counters behind /status and /metrics.
 * Created by the master before forking (MAP_SHARED|MAP_ANONYMOUS); workers
 * write only their own slot and bump counters atomically.
 */
#ifndef S4S_SCOREBOARD_H
#define S4S_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>

#define SB_MAX_SLOTS 256 /* 2 × the largest WORKERS, for the overlap during a reload */
#define SB_MAX_ROUTES 64 /* route-table entries tracked in metrics; one extra for "unrouted" */
#define SB_CURRENT_LEN 160

enum sb_state { SB_FREE = 0, SB_STARTING, SB_IDLE, SB_BUSY, SB_STOPPING };

/* Status codes counted individually; anything else lands in the last bucket. */
/* (clang-format 14 does not settle on one layout for this list) */
/* clang-format off */
#define SB_STATUS_CODES \
    X(200) X(201) X(204) X(302) X(304) X(400) X(401) X(403) X(404) X(405) X(409) X(411) \
    X(413) X(415) X(422) X(500) X(503) X(507)
/* clang-format on */
enum {
#define X(c) SB_ST_##c,
    SB_STATUS_CODES
#undef X
        SB_ST_OTHER,
    SB_NSTATUS
};

/* Latency histogram upper bounds in microseconds (+Inf is implicit). */
#define SB_LATENCY_BOUNDS_US                                                                       \
    {                                                                                              \
        1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,        \
            10000000                                                                               \
    }
#define SB_NBUCKETS 13

struct sb_slot {
    pid_t pid;
    int generation;
    int state;                    /* enum sb_state */
    uint64_t requests;            /* served by this worker */
    int64_t started_ms;           /* worker start, monotonic ms */
    int64_t request_start_ms;     /* current request start, monotonic ms */
    uint64_t rss_kb;              /* last measured resident size */
    char current[SB_CURRENT_LEN]; /* "GET /api/status" while busy */
};

struct sb_route_stats {
    uint64_t status[SB_NSTATUS];
    uint64_t latency[SB_NBUCKETS];
    uint64_t latency_sum_us;
};

struct scoreboard {
    int64_t started_at; /* unix seconds */
    int64_t started_ms; /* monotonic */
    uint64_t accepted;  /* requests accepted by all workers */
    uint64_t restarts;  /* workers respawned after dying or being killed */
    uint64_t timeouts;  /* workers killed for REQUEST_TIMEOUT */
    uint64_t recycled;  /* workers replaced after MAX_REQUESTS */
    uint64_t reloads;
    uint64_t db_busy_retries;
    uint64_t conflicts;
    uint64_t bytes_uploaded;
    int generation;
    int nroutes;
    struct sb_route_stats routes[SB_MAX_ROUTES + 1];
    struct sb_slot slots[SB_MAX_SLOTS];
};

/* Map a fresh zeroed scoreboard shared with future children; NULL on failure. */
struct scoreboard *sb_create(void);
void sb_destroy(struct scoreboard *sb);
int sb_status_index(int status);
/* Record a finished request in the route stats (route -1 = unrouted). */
void sb_count_request(struct scoreboard *sb, int route, int status, int64_t duration_us);
#define SB_ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define SB_LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

#endif
