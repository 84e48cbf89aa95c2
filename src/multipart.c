/*
 * multipart.c — the streaming multipart/form-data parser (RFC 2046, RFC 7578)
 * and the boundary extraction from a Content-Type value. One fixed-size state
 * per body: part headers are collected into a bounded buffer, part bodies are
 * passed through to callbacks as they arrive.
 *
 * The delimiter is searched as CRLF "--" boundary. The first one may sit at the
 * very start of the body with no CRLF before it, so the parser starts as if that
 * CRLF had just been seen. A boundary cannot contain CR, so CR occurs only at
 * the delimiter's first byte: when a partial match fails, none of the held-back
 * bytes can start a new match, and those bytes are a prefix of the delimiter
 * itself, so they are re-sent from there and nothing needs to be buffered.
 */
#include "multipart.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum mp_state {
    MPS_PREAMBLE,    /* before the first delimiter: bytes are dropped */
    MPS_AFTER_DELIM, /* "--boundary" matched: padding, then CRLF (next part) or "--" */
    MPS_DELIM_CR,    /* CR after the delimiter: LF must follow */
    MPS_CLOSE_DASH,  /* first '-' of the closing "--" */
    MPS_HEADERS,     /* collecting a part's header block */
    MPS_BODY,        /* part body, passed to part_data */
    MPS_EPILOGUE,    /* after the closing delimiter: bytes are dropped */
};

/* CRLF "--" boundary */
#define MP_DELIM_MAX (4 + MP_MAX_BOUNDARY)

struct mp_parser {
    struct mp_callbacks cb;
    void *ctx;
    enum mp_state state;
    int err;         /* sticky once set */
    bool seen_delim; /* at least one delimiter matched */
    size_t match;    /* delimiter bytes matched so far (held back) */
    size_t delim_len;
    size_t nparts;
    size_t hlen;       /* bytes in hdr */
    size_t line_start; /* offset in hdr of the header line being collected */
    struct mp_part_info info;
    char delim[MP_DELIM_MAX + 1];
    char hdr[MP_MAX_HEADER_BYTES + 1]; /* +1: the NUL the in-place parse adds */
};

static bool mp_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static char *mp_skip_ows(char *s)
{
    while (mp_is_ows(*s))
        s++;
    return s;
}

static const char *mp_skip_ows_c(const char *s)
{
    while (mp_is_ows(*s))
        s++;
    return s;
}

/* RFC 7230 tchar: what a type, a header name or a parameter name is made of. */
static bool mp_is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Printable ASCII, space allowed but not last (RFC 2046 bchars, read loosely:
 * clients use more than bchars, and only CR/LF/controls could confuse us). */
static bool mp_boundary_ok(const char *b, size_t len)
{
    if (len == 0 || len > MP_MAX_BOUNDARY || b[len - 1] == ' ')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)b[i] < 0x20 || (unsigned char)b[i] > 0x7e)
            return false;
    return true;
}

int mp_boundary_from_content_type(const char *content_type, char *out, size_t outlen)
{
    static const char prefix[] = "multipart/";
    const char *s;
    size_t blen = 0;
    bool found = false;

    if (!content_type || !out || outlen < 2)
        return MP_ERR_BOUNDARY;
    s = mp_skip_ows_c(content_type);
    if (strncasecmp(s, prefix, sizeof prefix - 1) != 0)
        return MP_ERR_BOUNDARY;
    s += sizeof prefix - 1;
    if (!mp_is_tchar(*s))
        return MP_ERR_BOUNDARY;
    while (mp_is_tchar(*s))
        s++;

    for (;;) {
        s = mp_skip_ows_c(s);
        if (*s == '\0')
            break;
        if (*s != ';')
            return MP_ERR_BOUNDARY;
        s = mp_skip_ows_c(s + 1);
        if (*s == '\0')
            break;
        const char *name = s;
        while (mp_is_tchar(*s))
            s++;
        size_t nlen = (size_t)(s - name);
        if (nlen == 0)
            return MP_ERR_BOUNDARY;
        s = mp_skip_ows_c(s);
        if (*s != '=')
            return MP_ERR_BOUNDARY;
        s = mp_skip_ows_c(s + 1);
        bool is_boundary = nlen == 8 && strncasecmp(name, "boundary", 8) == 0;
        if (is_boundary) {
            /* Two boundaries would leave the body ambiguous. */
            if (found)
                return MP_ERR_BOUNDARY;
            found = true;
        }
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (*s == '\\' && s[1] != '\0')
                    s++;
                if (*s == '\0')
                    return MP_ERR_BOUNDARY;
                if (is_boundary) {
                    if (blen >= MP_MAX_BOUNDARY || blen + 1 >= outlen)
                        return MP_ERR_BOUNDARY;
                    out[blen++] = *s;
                }
            }
            s++;
        } else {
            for (; *s != '\0' && *s != ';' && !mp_is_ows(*s); s++) {
                if (*s == '"')
                    return MP_ERR_BOUNDARY;
                if (is_boundary) {
                    if (blen >= MP_MAX_BOUNDARY || blen + 1 >= outlen)
                        return MP_ERR_BOUNDARY;
                    out[blen++] = *s;
                }
            }
        }
    }
    if (!found || !mp_boundary_ok(out, blen))
        return MP_ERR_BOUNDARY;
    out[blen] = '\0';
    return MP_OK;
}

struct mp_parser *mp_new(const char *boundary, const struct mp_callbacks *cb, void *ctx)
{
    size_t blen = boundary ? strlen(boundary) : 0;
    if (!cb || !mp_boundary_ok(boundary, blen))
        return NULL;
    struct mp_parser *p = xcalloc(1, sizeof *p);
    p->cb = *cb;
    p->ctx = ctx;
    p->state = MPS_PREAMBLE;
    memcpy(p->delim, "\r\n--", 4);
    memcpy(p->delim + 4, boundary, blen);
    p->delim_len = 4 + blen;
    p->delim[p->delim_len] = '\0';
    /* The first delimiter may open the body: act as if its CRLF was just seen. */
    p->match = 2;
    return p;
}

void mp_free(struct mp_parser *p)
{
    free(p);
}

static int mp_fail(struct mp_parser *p, int err)
{
    p->err = err;
    return err;
}

static int mp_emit(struct mp_parser *p, const char *data, size_t len)
{
    if (len == 0 || !p->cb.part_data)
        return MP_OK;
    if (p->cb.part_data(p->ctx, data, len) != 0)
        return mp_fail(p, MP_ERR_CALLBACK);
    return MP_OK;
}

/*
 * Scan preamble or body bytes for the delimiter. Body bytes go to part_data
 * in runs; preamble bytes are dropped. Returns how many bytes were consumed
 * (all, or up to and including a complete delimiter).
 *
 * A CR that turns out not to start the delimiter stays inside the current
 * run, so a body gets one part_data call per input chunk rather than one
 * per CR (binary data holds a CR every 256 bytes on average, and each call
 * is a write(2) of the upload's temp file). Only a partial match carried
 * over from an earlier call is re-sent from p->delim.
 */
static size_t mp_scan(struct mp_parser *p, const char *data, size_t len)
{
    bool deliver = p->state == MPS_BODY;
    const char *s = data, *end = data + len;
    const char *run = s;     /* start of body bytes not yet delivered */
    const char *held = NULL; /* start of a partial match begun in this call */

    while (s < end) {
        if (p->match == 0) {
            const char *cr = memchr(s, '\r', (size_t)(end - s));
            if (!cr) {
                s = end;
                break;
            }
            held = cr;
            p->match = 1;
            s = cr + 1;
            continue;
        }
        if (*s == p->delim[p->match]) {
            p->match++;
            s++;
            if (p->match == p->delim_len) {
                p->match = 0;
                p->seen_delim = true;
                /* The body ends where the delimiter began (earlier calls
                 * delivered everything before a match carried over). */
                if (deliver && held && mp_emit(p, run, (size_t)(held - run)) != MP_OK)
                    return len;
                if (deliver && p->cb.part_end && p->cb.part_end(p->ctx) != 0) {
                    mp_fail(p, MP_ERR_CALLBACK);
                    return len;
                }
                p->state = MPS_AFTER_DELIM;
                return (size_t)(s - data);
            }
            continue;
        }
        /* Not a delimiter after all: the held-back bytes were data. Bytes held
         * in this call are already part of the run; a match carried over from
         * an earlier call is re-sent from the delimiter. Look at *s again. */
        if (!held) {
            if (deliver && mp_emit(p, p->delim, p->match) != MP_OK)
                return len;
            run = s;
        }
        held = NULL;
        p->match = 0;
    }
    /* A partial match at the end is held back: re-sent if it fails later. */
    const char *stop = p->match == 0 ? s : held ? held : run;
    if (deliver)
        mp_emit(p, run, (size_t)(stop - run));
    return len;
}

/* Content-Disposition: form-data; name="x"; filename="y". Parsed in place:
 * each value is copied over its own "param=" so the NUL never lands on bytes
 * not yet read. */
static int mp_parse_disposition(struct mp_parser *p, char *s)
{
    char *type = s;
    while (mp_is_tchar(*s))
        s++;
    if (s == type)
        return MP_ERR_SYNTAX;
    for (;;) {
        s = mp_skip_ows(s);
        if (*s == '\0')
            break;
        if (*s != ';')
            return MP_ERR_SYNTAX;
        s = mp_skip_ows(s + 1);
        if (*s == '\0')
            break;
        char *name = s;
        while (mp_is_tchar(*s))
            s++;
        size_t nlen = (size_t)(s - name);
        if (nlen == 0)
            return MP_ERR_SYNTAX;
        /* filename* (RFC 5987) is ignored: browsers send filename= as well. */
        int which = 0;
        if (nlen == 4 && strncasecmp(name, "name", 4) == 0)
            which = 1;
        else if (nlen == 8 && strncasecmp(name, "filename", 8) == 0)
            which = 2;
        s = mp_skip_ows(s);
        if (*s != '=')
            return MP_ERR_SYNTAX;
        s = mp_skip_ows(s + 1);
        char *w = name, *value = name;
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (*s == '\0')
                    return MP_ERR_SYNTAX;
                /* Only \" and \\ are escapes: old browsers sent Windows paths
                 * (C:\dir\file) with bare backslashes. */
                if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    s++;
                *w++ = *s;
            }
            s++;
        } else {
            for (; *s != '\0' && *s != ';' && !mp_is_ows(*s); s++) {
                if (*s == '"')
                    return MP_ERR_SYNTAX;
                *w++ = *s;
            }
        }
        *w = '\0';
        if (which == 1)
            p->info.name = value;
        else if (which == 2)
            p->info.filename = value;
    }
    return MP_OK;
}

/* One unfolded header line, CR/LF already removed. Unknown headers are ignored. */
static int mp_header_line(struct mp_parser *p, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return MP_ERR_SYNTAX;
    char *name_end = colon;
    while (name_end > line && mp_is_ows(name_end[-1]))
        name_end--;
    if (name_end == line)
        return MP_ERR_SYNTAX;
    *name_end = '\0';
    char *value = mp_skip_ows(colon + 1);
    char *vend = value + strlen(value);
    while (vend > value && mp_is_ows(vend[-1]))
        vend--;
    *vend = '\0';

    if (strcasecmp(line, "content-disposition") == 0)
        return mp_parse_disposition(p, value);
    if (strcasecmp(line, "content-type") == 0)
        p->info.content_type = value;
    return MP_OK;
}

/* The whole header block (ending with its empty line) is in hdr: parse it and
 * start the part. */
static int mp_headers_done(struct mp_parser *p)
{
    char *h = p->hdr;
    h[p->hlen] = '\0';
    if (mp_is_ows(h[0]))
        return mp_fail(p, MP_ERR_SYNTAX);
    /* Obsolete line folding: a line starting with white space continues the previous one. */
    for (size_t i = 0; i + 1 < p->hlen; i++) {
        if (h[i] == '\n' && mp_is_ows(h[i + 1])) {
            h[i] = ' ';
            if (i > 0 && h[i - 1] == '\r')
                h[i - 1] = ' ';
        }
    }
    p->info.name = "";
    p->info.filename = NULL;
    p->info.content_type = NULL;
    for (char *line = h;;) {
        char *nl = strchr(line, '\n');
        if (!nl) /* cannot happen: the block ends with its empty line */
            return mp_fail(p, MP_ERR_SYNTAX);
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        if (*line == '\0')
            break;
        int rc = mp_header_line(p, line);
        if (rc != MP_OK)
            return mp_fail(p, rc);
        line = nl + 1;
    }
    if (p->cb.part_begin && p->cb.part_begin(p->ctx, &p->info) != 0)
        return mp_fail(p, MP_ERR_CALLBACK);
    p->state = MPS_BODY;
    p->match = 0;
    return MP_OK;
}

static int mp_header_byte(struct mp_parser *p, char c)
{
    unsigned char uc = (unsigned char)c;
    if (p->hlen >= MP_MAX_HEADER_BYTES)
        return mp_fail(p, MP_ERR_HEADER_SIZE);
    if (c != '\n') {
        /* A CR anywhere but before LF, or any other control byte, is not a header. */
        if (p->hlen > p->line_start && p->hdr[p->hlen - 1] == '\r')
            return mp_fail(p, MP_ERR_SYNTAX);
        if ((uc < 0x20 && c != '\t' && c != '\r') || uc == 0x7f)
            return mp_fail(p, MP_ERR_SYNTAX);
        p->hdr[p->hlen++] = c;
        return MP_OK;
    }
    p->hdr[p->hlen++] = c;
    size_t line_len = p->hlen - 1 - p->line_start;
    if (line_len > 0 && p->hdr[p->hlen - 2] == '\r')
        line_len--;
    if (line_len == 0)
        return mp_headers_done(p);
    p->line_start = p->hlen;
    return MP_OK;
}

/* The delimiter line ended: a new part's headers follow. */
static int mp_start_part(struct mp_parser *p)
{
    if (++p->nparts > MP_MAX_PARTS)
        return mp_fail(p, MP_ERR_TOO_MANY);
    p->state = MPS_HEADERS;
    p->hlen = 0;
    p->line_start = 0;
    return MP_OK;
}

int mp_feed(struct mp_parser *p, const char *data, size_t len)
{
    size_t i = 0;
    if (p->err)
        return p->err;
    while (i < len && !p->err) {
        char c;
        switch (p->state) {
        case MPS_PREAMBLE:
        case MPS_BODY:
            i += mp_scan(p, data + i, len - i);
            break;
        case MPS_AFTER_DELIM:
            c = data[i++];
            if (c == '-')
                p->state = MPS_CLOSE_DASH;
            else if (c == '\r')
                p->state = MPS_DELIM_CR;
            else if (c == '\n')
                mp_start_part(p);
            else if (!mp_is_ows(c)) /* transport padding is allowed */
                mp_fail(p, MP_ERR_SYNTAX);
            break;
        case MPS_DELIM_CR:
            if (data[i++] == '\n')
                mp_start_part(p);
            else
                mp_fail(p, MP_ERR_SYNTAX);
            break;
        case MPS_CLOSE_DASH:
            if (data[i++] == '-')
                p->state = MPS_EPILOGUE;
            else
                mp_fail(p, MP_ERR_SYNTAX);
            break;
        case MPS_HEADERS:
            mp_header_byte(p, data[i++]);
            break;
        case MPS_EPILOGUE:
            i = len;
            break;
        }
    }
    return p->err;
}

int mp_finish(struct mp_parser *p)
{
    if (p->err)
        return p->err;
    if (p->state == MPS_EPILOGUE)
        return MP_OK;
    /* No delimiter at all is not a cut-off multipart body but something else. */
    return mp_fail(p, p->seen_delim ? MP_ERR_TRUNCATED : MP_ERR_SYNTAX);
}

const char *mp_strerror(int status)
{
    switch (status) {
    case MP_OK:
        return "no error";
    case MP_ERR_BOUNDARY:
        return "missing or invalid multipart boundary";
    case MP_ERR_SYNTAX:
        return "malformed multipart body";
    case MP_ERR_HEADER_SIZE:
        return "part headers too large";
    case MP_ERR_TOO_MANY:
        return "too many parts";
    case MP_ERR_TRUNCATED:
        return "multipart body ended before the final boundary";
    case MP_ERR_CALLBACK:
        return "multipart processing stopped";
    }
    return "unknown multipart error";
}
