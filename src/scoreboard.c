/*
 * scoreboard.c — creating the shared page and counting requests into it.
 */
#include "scoreboard.h"

#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util.h"

struct scoreboard *sb_create(void)
{
    void *p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    struct scoreboard *sb = p;
    memset(sb, 0, sizeof *sb);
    sb->started_at = (int64_t)time(NULL);
    sb->started_ms = now_mono_ms();
    return sb;
}

void sb_destroy(struct scoreboard *sb)
{
    if (sb)
        munmap(sb, sizeof *sb);
}

int sb_status_index(int status)
{
    switch (status) {
#define X(c)                                                                                       \
    case c:                                                                                        \
        return SB_ST_##c;
        SB_STATUS_CODES
#undef X
    default:
        return SB_ST_OTHER;
    }
}

void sb_count_request(struct scoreboard *sb, int route, int status, int64_t duration_us)
{
    static const int64_t bounds[] = SB_LATENCY_BOUNDS_US;
    int idx = (route >= 0 && route < SB_MAX_ROUTES) ? route : SB_MAX_ROUTES;
    struct sb_route_stats *rs = &sb->routes[idx];
    SB_ADD(rs->status[sb_status_index(status)], 1);
    int b = 0;
    while (b < (int)ARRAY_LEN(bounds) && duration_us > bounds[b])
        b++;
    SB_ADD(rs->latency[b], 1);
    SB_ADD(rs->latency_sum_us, (uint64_t)(duration_us > 0 ? duration_us : 0));
}
