/*
 * router.c — matching a request against the route table, segment by segment.
 */
#include "router.h"

#include <string.h>

/* Match one pattern; fills params. Returns 1 on match. */
static int pattern_match(const char *pat, const char *path, struct route_match *m)
{
    int np = 0;
    const char *p = pat, *s = path;
    for (;;) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pend = strchr(p, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        const char *send = strchr(s, '/');
        size_t slen = send ? (size_t)(send - s) : strlen(s);
        if (plen > 0 && p[0] == ':') {
            if (slen == 0 || np >= ROUTER_MAX_PARAMS)
                return 0;
            m->params[np] = s;
            m->param_len[np] = slen;
            np++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
        if (*p == '\0') {
            /* "/api/assets/" matches the pattern "/api/assets/" and "/api/assets" */
            if (*s == '\0' || (s[0] == '/' && s[1] == '\0'))
                break;
            return 0;
        }
        if (*s == '\0') {
            if (p[0] == '/' && p[1] == '\0') /* "/api/assets" matches "/api/assets/" */
                break;
            return 0;
        }
    }
    m->nparams = np;
    return 1;
}

int router_match(const struct route *table, size_t n, const char *method, const char *path,
                 struct route_match *m)
{
    int path_matched = 0;
    size_t allow_len = 0;
    m->allow[0] = '\0';
    m->index = -1;
    m->nparams = 0;
    for (size_t i = 0; i < n; i++) {
        struct route_match tmp;
        if (!pattern_match(table[i].pattern, path, &tmp))
            continue;
        if (strcmp(table[i].method, method) == 0) {
            *m = tmp;
            m->index = (int)i;
            m->allow[0] = '\0';
            return ROUTE_FOUND;
        }
        path_matched = 1;
        size_t mlen = strlen(table[i].method);
        if (strstr(m->allow, table[i].method) == NULL && allow_len + mlen + 3 < sizeof m->allow) {
            if (allow_len) {
                memcpy(m->allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(m->allow + allow_len, table[i].method, mlen);
            allow_len += mlen;
            m->allow[allow_len] = '\0';
        }
    }
    return path_matched ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}
