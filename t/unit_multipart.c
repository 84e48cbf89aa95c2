/*
 * unit_multipart.c — the streaming multipart parser (every split of the input
 * must give the same parts, byte for byte), boundary extraction, the limits,
 * and upload_parse on top of it with a memory reader and a scratch blob store.
 */
#include "../src/multipart.c"
#include "../src/upload.c"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

/* ---- a recording consumer ---- */

#define T_MAX_PARTS 80

struct t_part {
    char *name;
    char *filename; /* NULL when absent */
    char *ctype;    /* NULL when absent */
    char *data;
    size_t len, cap;
    bool ended;
};

struct t_coll {
    struct t_part parts[T_MAX_PARTS];
    size_t n;
    int order_errors; /* callbacks out of order */
    bool in_part;
    int stop_at_begin; /* >0: part_begin of that part (1-based) returns non-zero */
};

static char *t_dup(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static int t_begin(void *ctx, const struct mp_part_info *info)
{
    struct t_coll *c = ctx;
    if (c->in_part || c->n >= T_MAX_PARTS) {
        c->order_errors++;
        return 1;
    }
    if (c->stop_at_begin && (size_t)c->stop_at_begin == c->n + 1)
        return 1;
    struct t_part *p = &c->parts[c->n++];
    memset(p, 0, sizeof *p);
    p->name = t_dup(info->name);
    p->filename = t_dup(info->filename);
    p->ctype = t_dup(info->content_type);
    c->in_part = true;
    return 0;
}

static int t_data(void *ctx, const char *data, size_t len)
{
    struct t_coll *c = ctx;
    if (!c->in_part || len == 0) {
        c->order_errors++;
        return 0;
    }
    struct t_part *p = &c->parts[c->n - 1];
    if (p->len + len > p->cap) {
        p->cap = (p->len + len) * 2;
        p->data = xrealloc(p->data, p->cap);
    }
    memcpy(p->data + p->len, data, len);
    p->len += len;
    return 0;
}

static int t_end(void *ctx)
{
    struct t_coll *c = ctx;
    if (!c->in_part)
        c->order_errors++;
    else
        c->parts[c->n - 1].ended = true;
    c->in_part = false;
    return 0;
}

static const struct mp_callbacks t_cb = {t_begin, t_data, t_end};

static void t_coll_free(struct t_coll *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->parts[i].name);
        free(c->parts[i].filename);
        free(c->parts[i].ctype);
        free(c->parts[i].data);
    }
    memset(c, 0, sizeof *c);
}

/* Parse body in pieces ending at the given cut offsets (ascending), then finish.
 * The first error is returned. */
static int t_parse_cuts(const char *boundary, const char *body, size_t len, const size_t *cuts,
                        size_t ncuts, struct t_coll *c)
{
    memset(c, 0, sizeof *c);
    struct mp_parser *p = mp_new(boundary, &t_cb, c);
    if (!p)
        return -1;
    size_t at = 0;
    int rc = MP_OK;
    for (size_t i = 0; i <= ncuts && rc == MP_OK; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        rc = mp_feed(p, body + at, to - at);
        at = to;
    }
    if (rc == MP_OK)
        rc = mp_finish(p);
    mp_free(p);
    return rc;
}

static int t_parse(const char *boundary, const char *body, size_t len, struct t_coll *c)
{
    return t_parse_cuts(boundary, body, len, NULL, 0, c);
}

static int t_parse_step(const char *boundary, const char *body, size_t len, size_t step,
                        struct t_coll *c)
{
    memset(c, 0, sizeof *c);
    struct mp_parser *p = mp_new(boundary, &t_cb, c);
    if (!p)
        return -1;
    int rc = MP_OK;
    for (size_t at = 0; at < len && rc == MP_OK; at += step)
        rc = mp_feed(p, body + at, len - at < step ? len - at : step);
    if (rc == MP_OK)
        rc = mp_finish(p);
    mp_free(p);
    return rc;
}

static bool t_streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool t_same(const struct t_coll *a, const struct t_coll *b)
{
    if (a->n != b->n || a->order_errors || b->order_errors || a->in_part != b->in_part)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct t_part *x = &a->parts[i], *y = &b->parts[i];
        if (!t_streq(x->name, y->name) || !t_streq(x->filename, y->filename) ||
            !t_streq(x->ctype, y->ctype) || x->len != y->len || x->ended != y->ended ||
            (x->len && memcmp(x->data, y->data, x->len) != 0))
            return false;
    }
    return true;
}

/* ---- a growable byte buffer for building bodies ---- */

struct t_buf {
    char *p;
    size_t len, cap;
};

static void t_put(struct t_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void t_puts(struct t_buf *b, const char *s)
{
    t_put(b, s, strlen(s));
}

#define BND "----WebKitFormBoundary7MA4YWxkTrZu0gW"

/* Binary file content full of near-delimiters: "\r\n--", boundary prefixes,
 * the boundary without its CRLF or dashes, CRs, NULs, bytes >= 0x80; it ends
 * with a delimiter prefix so the real delimiter follows held-back bytes. */
static void t_tricky_data(struct t_buf *b)
{
    const size_t blen = strlen(BND);
    t_put(b, "\x00\x01\xff\xfe", 4);
    t_puts(b, "\r\n--");
    t_puts(b, "\r\r\n-");
    t_puts(b, "\r\n--");
    t_put(b, BND, blen - 1);
    t_puts(b, "Q");
    t_puts(b, "XX" BND "YY");
    t_puts(b, "--" BND);
    t_puts(b, "\n--" BND "\n");
    t_puts(b, "\r\n-" BND);
    t_puts(b, "\r\n--");
    t_put(b, BND, 5);
    t_put(b, "\0\r\0\n", 4);
    t_puts(b, "\r\n--");
    t_put(b, BND, blen - 1);
}

static const char t_title[] = "My \"first\" project";
static const char t_note[] = "line one\r\nline two\r\n";

/* Two fields and one file; preamble and epilogue optional. */
static void t_make_body(struct t_buf *b, const char *file, size_t flen, bool pre, bool epi)
{
    if (pre)
        t_puts(b, "This is the preamble.\r\n-- not a boundary\r\n");
    t_puts(b, "--" BND "\r\n"
              "Content-Disposition: form-data; name=\"title\"\r\n"
              "\r\n");
    t_puts(b, t_title);
    t_puts(b, "\r\n--" BND "\r\n"
              "content-disposition: form-data; name=\"note\"\r\n"
              "\r\n");
    t_puts(b, t_note);
    t_puts(b, "\r\n--" BND "\r\n"
              "Content-Disposition: form-data; name=\"file\"; filename=\"Project 1.sb3\"\r\n"
              "Content-Type: application/x.scratch.sb3\r\n"
              "\r\n");
    t_put(b, file, flen);
    t_puts(b, "\r\n--" BND "--");
    if (epi)
        t_puts(b, "\r\nThis is the epilogue.\r\n--" BND "\r\nignored\r\n");
    else
        t_puts(b, "\r\n");
}

static bool t_check_normal(const struct t_coll *c, const char *file, size_t flen)
{
    return c->n == 3 && !c->order_errors && !c->in_part && strcmp(c->parts[0].name, "title") == 0 &&
           !c->parts[0].filename && !c->parts[0].ctype && c->parts[0].len == strlen(t_title) &&
           memcmp(c->parts[0].data, t_title, c->parts[0].len) == 0 &&
           strcmp(c->parts[1].name, "note") == 0 && c->parts[1].len == strlen(t_note) &&
           memcmp(c->parts[1].data, t_note, c->parts[1].len) == 0 &&
           strcmp(c->parts[2].name, "file") == 0 && c->parts[2].filename &&
           strcmp(c->parts[2].filename, "Project 1.sb3") == 0 && c->parts[2].ctype &&
           strcmp(c->parts[2].ctype, "application/x.scratch.sb3") == 0 && c->parts[2].len == flen &&
           memcmp(c->parts[2].data, file, flen) == 0 && c->parts[0].ended && c->parts[1].ended &&
           c->parts[2].ended;
}

static void test_normal(void)
{
    struct t_buf data = {0}, body = {0};
    struct t_coll ref, c;

    t_tricky_data(&data);
    t_make_body(&body, data.p, data.len, false, false);

    is_int(t_parse(BND, body.p, body.len, &ref), MP_OK, "whole body parses");
    ok(t_check_normal(&ref, data.p, data.len), "2 fields + 1 file, data byte-exact");

    is_int(t_parse_step(BND, body.p, body.len, 1, &c), MP_OK, "1 byte at a time parses");
    ok(t_same(&ref, &c), "1 byte at a time: same parts");
    t_coll_free(&c);

    size_t bad = 0;
    for (size_t step = 2; step < 100; step++) {
        if (t_parse_step(BND, body.p, body.len, step, &c) != MP_OK || !t_same(&ref, &c))
            bad++;
        t_coll_free(&c);
    }
    is_int(bad, 0, "every fixed piece size 2..99 gives the same parts");

    bad = 0;
    for (size_t i = 0; i <= body.len; i++) {
        if (t_parse_cuts(BND, body.p, body.len, &i, 1, &c) != MP_OK || !t_same(&ref, &c))
            bad++;
        t_coll_free(&c);
    }
    is_int(bad, 0, "every single split point (%zu) gives the same parts", body.len + 1);

    /* A middle piece of up to 80 bytes anywhere: it straddles or holds each delimiter. */
    bad = 0;
    size_t runs = 0;
    for (size_t i = 0; i <= body.len; i++) {
        for (size_t j = i; j <= body.len && j - i <= 80; j++) {
            size_t cuts[2] = {i, j};
            if (t_parse_cuts(BND, body.p, body.len, cuts, 2, &c) != MP_OK || !t_same(&ref, &c))
                bad++;
            runs++;
            t_coll_free(&c);
        }
    }
    is_int(bad, 0, "every split pair within 80 bytes (%zu runs) gives the same parts", runs);
    t_coll_free(&ref);

    /* Preamble and epilogue (with a boundary in it) are ignored. */
    body.len = 0;
    t_make_body(&body, data.p, data.len, true, true);
    is_int(t_parse(BND, body.p, body.len, &c), MP_OK, "preamble + epilogue parse");
    ok(t_check_normal(&c, data.p, data.len), "preamble + epilogue: same parts");
    t_coll_free(&c);
    is_int(t_parse_step(BND, body.p, body.len, 1, &c), MP_OK, "preamble + epilogue bytewise");
    ok(t_check_normal(&c, data.p, data.len), "preamble + epilogue bytewise: same parts");
    t_coll_free(&c);

    free(data.p);
    free(body.p);
}

/* Parse a NUL-free body whole and bytewise; both must agree. */
static int t_parse_str(const char *boundary, const char *body, struct t_coll *c)
{
    struct t_coll c1;
    int rc = t_parse(boundary, body, strlen(body), c);
    int rc1 = t_parse_step(boundary, body, strlen(body), 1, &c1);
    if (rc1 != rc || (rc == MP_OK && !t_same(c, &c1)))
        rc = -2;
    t_coll_free(&c1);
    return rc;
}

static bool t_part_is(const struct t_coll *c, size_t i, const char *name, const char *filename,
                      const char *data)
{
    if (i >= c->n)
        return false;
    const struct t_part *p = &c->parts[i];
    return t_streq(p->name, name) && t_streq(p->filename, filename) && p->len == strlen(data) &&
           (p->len == 0 || memcmp(p->data, data, p->len) == 0);
}

static void test_line_endings(void)
{
    struct t_coll c;

    is_int(t_parse_str("b",
                       "--b\nContent-Disposition: form-data; name=\"a\"\n\nvalue\r\n--b\n"
                       "Content-Disposition: form-data; name=\"z\"\r\n\n2\r\n--b--",
                       &c),
           MP_OK, "bare LF after the delimiter and in part headers");
    ok(c.n == 2 && t_part_is(&c, 0, "a", NULL, "value") && t_part_is(&c, 1, "z", NULL, "2"),
       "bare LF: parts right");
    t_coll_free(&c);

    is_int(
        t_parse_str("b", "--b \t\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--", &c),
        MP_OK, "transport padding after the delimiter, close without CRLF");
    ok(c.n == 1 && t_part_is(&c, 0, "a", NULL, "v"), "padding: part right");
    t_coll_free(&c);

    is_int(t_parse_str("b",
                       "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                       "x\ny\n--b\r\n--b--\r\n",
                       &c),
           MP_OK, "bare LF inside a body is data, not a delimiter");
    ok(c.n == 1 && t_part_is(&c, 0, "a", NULL, "x\ny\n--b"), "bare LF body kept whole");
    t_coll_free(&c);

    is_int(t_parse_str("b",
                       "--b\r\nContent-Disposition: form-data;\r\n\tname=\"folded\"\r\n\r\n"
                       "f\r\n--b--",
                       &c),
           MP_OK, "folded header line");
    ok(c.n == 1 && t_part_is(&c, 0, "folded", NULL, "f"), "folded header: name found");
    t_coll_free(&c);

    is_int(t_parse_str("b", "--b\r\nContent-Disposition: form-data; na\rme=\"a\"\r\n\r\nv\r\n--b--",
                       &c),
           MP_ERR_SYNTAX, "bare CR inside a header line is a syntax error");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--bX\r\n\r\n\r\n--b--", &c), MP_ERR_SYNTAX,
           "delimiter followed by junk is a syntax error");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\rX", &c), MP_ERR_SYNTAX, "CR not followed by LF after delimiter");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b-x", &c), MP_ERR_SYNTAX, "single dash after delimiter");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\n folded first line: x\r\n\r\nv\r\n--b--", &c), MP_ERR_SYNTAX,
           "continuation with nothing to continue");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nno colon here\r\n\r\nv\r\n--b--", &c), MP_ERR_SYNTAX,
           "header line without a colon");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\n: empty name\r\n\r\nv\r\n--b--", &c), MP_ERR_SYNTAX,
           "header with an empty name");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nX-A: \x01\r\n\r\nv\r\n--b--", &c), MP_ERR_SYNTAX,
           "control byte in a header");
    t_coll_free(&c);
}

static void test_disposition(void)
{
    struct t_coll c;

    is_int(t_parse_str("b",
                       "--b\r\nCONTENT-DISPOSITION: Form-Data; NAME=\"n1\"; FileName=\"\"\r\n"
                       "CONTENT-TYPE:  text/plain  \r\n\r\n\r\n"
                       "--b\r\ncontent-disposition:form-data;name=plain;filename=f.txt\r\n\r\nB\r\n"
                       "--b\r\nContent-Disposition: form-data; name=\"q\"; "
                       "filename=\"a\\\"b\\\\c.txt\"\r\n\r\nC\r\n"
                       "--b\r\nContent-Disposition: form-data; name=\"w\"; "
                       "filename=\"C:\\dir\\x.sb3\"\r\n\r\nD\r\n"
                       "--b\r\nContent-Disposition: form-data; name=\"u\"; "
                       "filename*=UTF-8''na%C3%AFve.txt; filename=\"naive.txt\"\r\n\r\nE\r\n"
                       "--b\r\nX-Other: whatever\r\n\r\nF\r\n"
                       "--b\r\n\r\nG\r\n"
                       "--b\r\nContent-Disposition: form-data; name=\"s\" ; filename = \"sp\" ;\r\n"
                       "\r\nH\r\n"
                       "--b--\r\n",
                       &c),
           MP_OK, "Content-Disposition variants parse");
    ok(t_part_is(&c, 0, "n1", "", ""), "case-insensitive names, empty filename, empty body");
    is_str(c.n > 0 ? c.parts[0].ctype : NULL, "text/plain", "Content-Type trimmed");
    ok(t_part_is(&c, 1, "plain", "f.txt", "B"), "unquoted parameters");
    ok(t_part_is(&c, 2, "q", "a\"b\\c.txt", "C"), "quoted-pair escapes");
    ok(t_part_is(&c, 3, "w", "C:\\dir\\x.sb3", "D"), "bare backslashes (Windows path) kept");
    ok(t_part_is(&c, 4, "u", "naive.txt", "E"), "filename* ignored");
    ok(t_part_is(&c, 5, "", NULL, "F") && c.parts[5].ctype == NULL,
       "no Content-Disposition: name \"\", no filename");
    ok(t_part_is(&c, 6, "", NULL, "G"), "part without any headers");
    ok(t_part_is(&c, 7, "s", "sp", "H"), "white space around ; and =, trailing ;");
    is_int(c.n, 8, "8 parts");
    t_coll_free(&c);

    is_int(
        t_parse_str("b", "--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--b--", &c),
        MP_ERR_SYNTAX, "unterminated quoted string");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nContent-Disposition: form-data; name\r\n\r\nv\r\n--b--", &c),
           MP_ERR_SYNTAX, "parameter without a value");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nContent-Disposition: ; name=x\r\n\r\nv\r\n--b--", &c),
           MP_ERR_SYNTAX, "missing disposition type");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nContent-Disposition: form-data name=x\r\n\r\nv\r\n--b--", &c),
           MP_ERR_SYNTAX, "missing ; between parameters");
    t_coll_free(&c);
}

static void test_truncated_and_garbage(void)
{
    struct t_coll c;
    const char *head = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue";

    is_int(t_parse_str("b", head, &c), MP_ERR_TRUNCATED, "no final boundary: truncated");
    ok(c.n == 1 && !c.parts[0].ended, "truncated part never ended");
    t_coll_free(&c);
    is_int(
        t_parse_str("b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b", &c),
        MP_ERR_TRUNCATED, "ends right after a delimiter: truncated");
    t_coll_free(&c);
    is_int(
        t_parse_str("b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b-", &c),
        MP_ERR_TRUNCATED, "ends inside the closing dashes: truncated");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nContent-Disposition: form-data; na", &c), MP_ERR_TRUNCATED,
           "ends inside part headers: truncated");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--", &c),
           MP_ERR_TRUNCATED, "ends inside a delimiter: truncated");
    t_coll_free(&c);
    is_int(t_parse_str("b", "", &c), MP_ERR_SYNTAX, "empty body: not multipart");
    t_coll_free(&c);
    is_int(t_parse_str("b", "{\"json\": true}", &c), MP_ERR_SYNTAX, "no boundary at all: garbage");
    t_coll_free(&c);
    is_int(t_parse_str("b", "--b--\r\n", &c), MP_OK, "closing delimiter alone: zero parts");
    is_int(c.n, 0, "zero parts");
    t_coll_free(&c);

    /* Errors are sticky. */
    memset(&c, 0, sizeof c);
    struct mp_parser *p = mp_new("b", &t_cb, &c);
    is_int(mp_feed(p, "--bZ", 4), MP_ERR_SYNTAX, "syntax error reported");
    is_int(mp_feed(p, "\r\n", 2), MP_ERR_SYNTAX, "and again on the next feed");
    is_int(mp_finish(p), MP_ERR_SYNTAX, "and by finish");
    mp_free(p);
    t_coll_free(&c);

    /* A callback stops the parse. */
    memset(&c, 0, sizeof c);
    c.stop_at_begin = 2;
    p = mp_new("b", &t_cb, &c);
    const char *two = "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b--";
    is_int(mp_feed(p, two, strlen(two)), MP_ERR_CALLBACK, "callback abort: MP_ERR_CALLBACK");
    is_int(mp_finish(p), MP_ERR_CALLBACK, "callback abort is sticky");
    is_int(c.n, 1, "no part after the abort");
    mp_free(p);
    t_coll_free(&c);

    /* Callbacks may be NULL. */
    struct mp_callbacks none = {NULL, NULL, NULL};
    p = mp_new("b", &none, NULL);
    is_int(mp_feed(p, two, strlen(two)), MP_OK, "NULL callbacks are skipped");
    is_int(mp_finish(p), MP_OK, "NULL callbacks: finish OK");
    mp_free(p);
}

static void test_limits(void)
{
    struct t_coll c;
    struct t_buf b = {0};

    /* Header block (all lines + the empty line) of exactly MP_MAX_HEADER_BYTES. */
    const char *cd = "Content-Disposition: form-data; name=\"a\"\r\n";
    size_t fixed = strlen(cd) + strlen("X-Pad: ") + 2 + 2;
    for (int extra = 0; extra <= 1; extra++) {
        b.len = 0;
        t_puts(&b, "--b\r\n");
        t_puts(&b, cd);
        t_puts(&b, "X-Pad: ");
        for (size_t i = 0; i < MP_MAX_HEADER_BYTES - fixed + (size_t)extra; i++)
            t_puts(&b, "p");
        t_puts(&b, "\r\n\r\nv\r\n--b--");
        int rc = t_parse_step("b", b.p, b.len, 7, &c);
        if (!extra)
            ok(rc == MP_OK && t_part_is(&c, 0, "a", NULL, "v"),
               "headers of exactly MP_MAX_HEADER_BYTES are fine");
        else
            is_int(rc, MP_ERR_HEADER_SIZE, "one byte more: MP_ERR_HEADER_SIZE");
        t_coll_free(&c);
    }

    /* Many short header lines count together. */
    b.len = 0;
    t_puts(&b, "--b\r\n");
    for (int i = 0; i < 2000; i++)
        t_puts(&b, "X-A: b\r\n");
    t_puts(&b, "\r\nv\r\n--b--");
    is_int(t_parse("b", b.p, b.len, &c), MP_ERR_HEADER_SIZE, "many header lines: HEADER_SIZE");
    t_coll_free(&c);

    /* One endless header line never ends. */
    b.len = 0;
    t_puts(&b, "--b\r\nX-A: ");
    for (int i = 0; i < 20000; i++)
        t_puts(&b, "y");
    is_int(t_parse("b", b.p, b.len, &c), MP_ERR_HEADER_SIZE, "endless header line: HEADER_SIZE");
    t_coll_free(&c);

    for (int nparts = MP_MAX_PARTS; nparts <= MP_MAX_PARTS + 1; nparts++) {
        b.len = 0;
        for (int i = 0; i < nparts; i++) {
            char line[96];
            snprintf(line, sizeof line,
                     "--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\n%d\r\n", i, i);
            t_puts(&b, line);
        }
        t_puts(&b, "--b--\r\n");
        int rc = t_parse("b", b.p, b.len, &c);
        if (nparts == MP_MAX_PARTS) {
            ok(rc == MP_OK && c.n == MP_MAX_PARTS && t_part_is(&c, 63, "f63", NULL, "63"),
               "%d parts are fine", nparts);
        } else {
            is_int(rc, MP_ERR_TOO_MANY, "%d parts: MP_ERR_TOO_MANY", nparts);
            is_int(c.n, MP_MAX_PARTS, "the first %d parts were delivered", MP_MAX_PARTS);
        }
        t_coll_free(&c);
    }
    free(b.p);
}

static void test_bodies(void)
{
    struct t_coll c;
    const char *bnd = "AaB03x";

    is_int(t_parse_str(bnd,
                       "--AaB03x\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n"
                       "\r\n--AaB03x\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"
                       "\r\n--AaB03x--",
                       &c),
           MP_OK, "empty part bodies");
    ok(c.n == 2 && t_part_is(&c, 0, "e", NULL, "") && t_part_is(&c, 1, "f", NULL, "") &&
           c.parts[0].ended && c.parts[1].ended,
       "empty bodies: two ended parts with no data");
    t_coll_free(&c);

    is_int(t_parse_str(bnd,
                       "--AaB03x\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
                       "\r\n--AaB03\r\n--AaB0\r\n--AaB03y\r\n-AaB03x--AaB03x\r\n"
                       "\r\n--AaB03x--",
                       &c),
           MP_OK, "body holding boundary prefixes");
    ok(c.n == 1 &&
           t_part_is(&c, 0, "p", NULL, "\r\n--AaB03\r\n--AaB0\r\n--AaB03y\r\n-AaB03x--AaB03x\r\n"),
       "boundary prefixes are data");
    t_coll_free(&c);

    is_int(t_parse_str(bnd,
                       "--AaB03x\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
                       "\r\r\r\n\r\n\r\n-\r\n--\r\n--A\r\r\n--AaB03x--",
                       &c),
           MP_OK, "body of CRs, LFs and dashes");
    ok(c.n == 1 && t_part_is(&c, 0, "p", NULL, "\r\r\r\n\r\n\r\n-\r\n--\r\n--A\r"),
       "CR/LF/dash runs are data up to the real delimiter");
    t_coll_free(&c);

    /* The longest boundary. */
    char big[MP_MAX_BOUNDARY + 1];
    memset(big, 'z', MP_MAX_BOUNDARY);
    big[MP_MAX_BOUNDARY] = '\0';
    struct t_buf b = {0};
    t_puts(&b, "--");
    t_puts(&b, big);
    t_puts(&b, "\r\n\r\nxyz\r\n--");
    t_puts(&b, big);
    t_puts(&b, "--");
    is_int(t_parse_str(big, b.p, &c), MP_OK, "70-character boundary");
    ok(t_part_is(&c, 0, "", NULL, "xyz"), "70-character boundary: data");
    t_coll_free(&c);
    free(b.p);
}

static void test_boundary(void)
{
    char out[MP_MAX_BOUNDARY + 1];
    char tiny[4];
    static const struct {
        const char *ct;
        const char *want; /* NULL: MP_ERR_BOUNDARY */
    } cases[] = {
        {"multipart/form-data; boundary=----abc", "----abc"},
        {"multipart/form-data;boundary=abc", "abc"},
        {"multipart/form-data; boundary=\"quoted =?:b\"", "quoted =?:b"},
        {"Multipart/Form-Data; BOUNDARY=xyz", "xyz"},
        {"  multipart/form-data ; charset=utf-8; boundary=abc ; foo=\"x;y\"", "abc"},
        {"multipart/form-data; foo=\"boundary=no\"; boundary=\"a\\\"b\"", "a\"b"},
        {"multipart/mixed; boundary=mixed", "mixed"},
        {"multipart/form-data; boundary=" BND, BND},
        {"multipart/form-data", NULL},
        {"multipart/form-data;", NULL},
        {"multipart/form-data; boundary=", NULL},
        {"multipart/form-data; boundary=\"\"", NULL},
        {"multipart/form-data; boundary=\"abc", NULL},
        {"multipart/form-data; boundary=\"trailing \"", NULL},
        {"multipart/form-data; boundary=a; boundary=b", NULL},
        {"multipart/form-data; boundary", NULL},
        {"multipart/form-data; boundary=abc def", NULL},
        {"multipart/form-data; xboundary=abc", NULL},
        {"multipart/; boundary=abc", NULL},
        {"text/plain; boundary=abc", NULL},
        {"application/x-www-form-urlencoded", NULL},
        {"", NULL},
        {"multipart/form-data; boundary=\"a\x01"
         "b\"",
         NULL},
        {"multipart/form-data; boundary=1234567890123456789012345678901234567890123456789012345678"
         "901234567890",
         "1234567890123456789012345678901234567890123456789012345678901234567890"},
        {"multipart/form-data; boundary=1234567890123456789012345678901234567890123456789012345678"
         "9012345678901",
         NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int rc = mp_boundary_from_content_type(cases[i].ct, out, sizeof out);
        if (cases[i].want)
            ok(rc == MP_OK && strcmp(out, cases[i].want) == 0, "boundary of '%s'", cases[i].ct);
        else
            is_int(rc, MP_ERR_BOUNDARY, "rejected: '%s'", cases[i].ct);
    }
    is_int(mp_boundary_from_content_type(NULL, out, sizeof out), MP_ERR_BOUNDARY, "NULL rejected");
    is_int(mp_boundary_from_content_type("multipart/form-data; boundary=abcd", tiny, sizeof tiny),
           MP_ERR_BOUNDARY, "boundary longer than the output buffer rejected");
    is_int(mp_boundary_from_content_type("multipart/form-data; boundary=abc", tiny, sizeof tiny),
           MP_OK, "boundary that just fits the output buffer");

    struct t_coll c;
    ok(mp_new("", &t_cb, &c) == NULL, "mp_new rejects an empty boundary");
    ok(mp_new("a\r\nb", &t_cb, &c) == NULL, "mp_new rejects CR/LF in the boundary");
    ok(mp_new(NULL, &t_cb, &c) == NULL, "mp_new rejects NULL");
    char longb[MP_MAX_BOUNDARY + 2];
    memset(longb, 'x', sizeof longb - 1);
    longb[sizeof longb - 1] = '\0';
    ok(mp_new(longb, &t_cb, &c) == NULL, "mp_new rejects a 71-character boundary");

    is_str(mp_strerror(MP_ERR_SYNTAX), "malformed multipart body", "strerror SYNTAX");
    is_str(mp_strerror(MP_ERR_TRUNCATED), "multipart body ended before the final boundary",
           "strerror TRUNCATED");
    is_str(mp_strerror(MP_ERR_HEADER_SIZE), "part headers too large", "strerror HEADER_SIZE");
    is_str(mp_strerror(MP_ERR_TOO_MANY), "too many parts", "strerror TOO_MANY");
    ok(mp_strerror(12345) != NULL, "strerror of an unknown code");
}

/* ---- upload_parse ---- */

struct t_reader {
    const char *data;
    size_t len, pos;
    size_t step;    /* at most this many bytes per read */
    size_t fail_at; /* return -1 once pos reaches this (0: never) */
    size_t reads;
};

static ssize_t t_read(void *ctx, char *buf, size_t len)
{
    struct t_reader *r = ctx;
    r->reads++;
    if (r->fail_at && r->pos >= r->fail_at)
        return -1;
    size_t n = r->len - r->pos;
    if (n > len)
        n = len;
    if (r->step && n > r->step)
        n = r->step;
    if (r->fail_at && r->pos + n > r->fail_at)
        n = r->fail_at - r->pos;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return (ssize_t)n;
}

static int t_count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static bool t_file_equals(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char *buf = xmalloc(len + 1);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf + got, len + 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    bool same = n == 0 && got == len && memcmp(buf, data, len) == 0;
    free(buf);
    return same;
}

static void t_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

static void t_rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", path);
    free(cmd);
}

#define CT "multipart/form-data; boundary=" BND

/* A form like the frontend's: title, a 200 KB project, a thumbnail, a note. */
static void t_make_upload(struct t_buf *b, const char *proj, size_t plen, const char *field,
                          size_t flen)
{
    t_puts(b, "--" BND "\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n");
    t_put(b, field, flen);
    t_puts(b, "\r\n--" BND "\r\nContent-Disposition: form-data; name=\"project\"; "
              "filename=\"p.sb3\"\r\nContent-Type: application/x.scratch.sb3\r\n\r\n");
    t_put(b, proj, plen);
    t_puts(b, "\r\n--" BND "\r\nContent-Disposition: form-data; name=\"thumb\"; filename=\"\"\r\n"
              "\r\n\x89PNG\r\n\x1a\n");
    t_puts(b, "\r\n--" BND "\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n");
    t_puts(b, "\r\n--" BND "--\r\n");
}

static void test_upload(void)
{
    char dir[] = "/tmp/s4s-unit-upload-XXXXXX";
    struct blobstore bs;
    arena_t arena;
    struct form form;
    const char *err;

    if (!mkdtemp(dir) || blob_store_open(&bs, dir) < 0) {
        ok(0, "scratch blob store");
        return;
    }
    arena_init(&arena, 0);

    size_t plen = 200 * 1024;
    char *proj = xmalloc(plen);
    for (size_t i = 0; i < plen; i++)
        proj[i] = (char)((i * 7919u) >> 3);
    /* Near-delimiters inside the file. */
    memcpy(proj + 1000, "\r\n--" BND, strlen(BND) + 3);
    memcpy(proj + 70000, "\r\n--", 4);

    struct t_buf body = {0};
    t_make_upload(&body, proj, plen, "Hello", 5);
    char want_sha[65];
    t_sha256_hex(proj, plen, want_sha);

    static const size_t steps[] = {0, 1, 4093};
    for (size_t s = 0; s < ARRAY_LEN(steps); s++) {
        struct t_reader rd = {.data = body.p, .len = body.len, .step = steps[s]};
        int rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
        is_int(rc, UP_OK, "upload parses (read step %zu)", steps[s]);
        if (rc != UP_OK) {
            printf("# %s\n", err);
            continue;
        }
        is_int(form.nfields, 2, "two text fields");
        is_str(form_value(&form, "title"), "Hello", "title field");
        is_str(form_value(&form, "empty"), "", "empty field");
        ok(form_value(&form, "nope") == NULL, "absent field is NULL");
        is_int(form.nfiles, 2, "two file parts");
        struct form_file *pf = form_get_file(&form, "project");
        ok(pf && strcmp(pf->filename, "p.sb3") == 0 && pf->content_type &&
               strcmp(pf->content_type, "application/x.scratch.sb3") == 0,
           "project file name and type");
        ok(pf && pf->w.finished && pf->w.size == plen && strcmp(pf->w.sha256, want_sha) == 0,
           "project file finished, size and SHA-256 right");
        ok(pf && t_file_equals(blob_writer_tmp_path(&pf->w), proj, plen),
           "temp file holds the exact bytes");
        struct form_file *th = form_get_file(&form, "thumb");
        ok(th && strcmp(th->filename, "") == 0 && th->content_type == NULL && th->w.size == 8,
           "empty filename is still a file part");
        ok(form_get_file(&form, "title") == NULL, "a text field is not a file");
        is_int(t_count_dir(bs.tmp_dir), 2, "two temp files while the form lives");

        if (s == 0 && pf) {
            is_int(blob_writer_commit(&bs, &pf->w), BLOB_OK, "handler commits the project");
            ok(blob_exists(&bs, want_sha), "committed blob exists");
        }
        form_cleanup(&form);
        form_cleanup(&form);
        is_int(t_count_dir(bs.tmp_dir), 0, "form_cleanup (twice) empties tmp/");
        if (s == 0)
            ok(blob_exists(&bs, want_sha), "the committed blob survives form_cleanup");
        arena_reset(&arena);
    }

    /* Too large: stops at max_bytes, nothing left behind. */
    struct t_reader rd = {.data = body.p, .len = body.len, .step = 1000};
    int rc = upload_parse(&arena, &bs, CT, t_read, &rd, 100000, &form, &err);
    is_int(rc, UP_ERR_TOO_LARGE, "body over max_bytes: UP_ERR_TOO_LARGE");
    is_str(err, "request body too large", "too large message");
    ok(rd.pos <= 101000, "reading stopped at max_bytes");
    is_int(t_count_dir(bs.tmp_dir), 0, "too large: tmp/ empty");
    ok(form.nfiles == 0 && form.nfields == 0, "too large: form emptied");
    form_cleanup(&form);

    rd = (struct t_reader){.data = body.p, .len = body.len};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, body.len - 1, &form, &err);
    is_int(rc, UP_ERR_TOO_LARGE, "one byte over max_bytes: UP_ERR_TOO_LARGE");
    is_int(t_count_dir(bs.tmp_dir), 0, "one byte over: tmp/ empty");

    rd = (struct t_reader){.data = body.p, .len = body.len};
    is_int(upload_parse(&arena, &bs, CT, t_read, &rd, body.len, &form, &err), UP_OK,
           "body of exactly max_bytes is fine");
    form_cleanup(&form);

    /* Truncated in the middle of the file. */
    rd = (struct t_reader){.data = body.p, .len = body.len / 2, .step = 3000};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
    is_int(rc, UP_ERR_CLIENT, "truncated body: UP_ERR_CLIENT");
    is_str(err, "request body ended early", "truncated message");
    is_int(t_count_dir(bs.tmp_dir), 0, "truncated: tmp/ empty");

    /* Reader error in the middle, and after the closing boundary. */
    rd = (struct t_reader){.data = body.p, .len = body.len, .step = 5000, .fail_at = 60000};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
    is_int(rc, UP_ERR_CLIENT, "reader error: UP_ERR_CLIENT");
    is_int(t_count_dir(bs.tmp_dir), 0, "reader error: tmp/ empty");
    rd = (struct t_reader){.data = body.p, .len = body.len, .fail_at = body.len};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
    is_int(rc, UP_OK, "reader error after the closing boundary: the form is whole");
    form_cleanup(&form);

    /* Content types. */
    rd = (struct t_reader){.data = body.p, .len = body.len};
    rc = upload_parse(&arena, &bs, "application/json", t_read, &rd, 0, &form, &err);
    ok(rc == UP_ERR_BAD && strcmp(err, "expected multipart/form-data") == 0,
       "JSON content type: expected multipart/form-data");
    rc = upload_parse(&arena, &bs, NULL, t_read, &rd, 0, &form, &err);
    ok(rc == UP_ERR_BAD && strcmp(err, "expected multipart/form-data") == 0, "no content type");
    rc = upload_parse(&arena, &bs, "multipart/mixed; boundary=" BND, t_read, &rd, 0, &form, &err);
    is_int(rc, UP_ERR_BAD, "multipart/mixed rejected");
    rc = upload_parse(&arena, &bs, "multipart/form-dataX; boundary=" BND, t_read, &rd, 0, &form,
                      &err);
    is_int(rc, UP_ERR_BAD, "multipart/form-dataX rejected");
    rc = upload_parse(&arena, &bs, "multipart/form-data", t_read, &rd, 0, &form, &err);
    ok(rc == UP_ERR_BAD && err && strstr(err, "boundary"), "missing boundary: message says so");
    rd = (struct t_reader){.data = body.p, .len = body.len};
    rc = upload_parse(&arena, &bs, "Multipart/Form-Data; boundary=\"" BND "\"", t_read, &rd, 0,
                      &form, &err);
    is_int(rc, UP_OK, "case-insensitive type, quoted boundary");
    form_cleanup(&form);

    /* Malformed after a file part started: the temp file goes. */
    struct t_buf bad = {0};
    t_puts(&bad, "--" BND "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n");
    t_put(&bad, proj, 5000);
    t_puts(&bad, "\r\n--" BND "garbage\r\n");
    rd = (struct t_reader){.data = bad.p, .len = bad.len};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
    ok(rc == UP_ERR_BAD && strcmp(err, "malformed multipart body") == 0,
       "malformed body: UP_ERR_BAD, message");
    is_int(t_count_dir(bs.tmp_dir), 0, "malformed: tmp/ empty");

    /* Text field limits. */
    char *big = xmalloc(UPLOAD_MAX_FIELD_BYTES + 1);
    memset(big, 'f', UPLOAD_MAX_FIELD_BYTES + 1);
    for (int extra = 0; extra <= 1; extra++) {
        struct t_buf fb = {0};
        t_make_upload(&fb, proj, 100, big, UPLOAD_MAX_FIELD_BYTES + (size_t)extra);
        rd = (struct t_reader){.data = fb.p, .len = fb.len, .step = 777};
        rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
        if (!extra) {
            ok(rc == UP_OK && form_value(&form, "title") &&
                   strlen(form_value(&form, "title")) == UPLOAD_MAX_FIELD_BYTES &&
                   form.fields[0].len == UPLOAD_MAX_FIELD_BYTES,
               "field of exactly UPLOAD_MAX_FIELD_BYTES is fine");
            form_cleanup(&form);
        } else {
            ok(rc == UP_ERR_BAD && strcmp(err, "form field too large") == 0,
               "one byte more: form field too large");
        }
        is_int(t_count_dir(bs.tmp_dir), 0, "field limit: tmp/ empty");
        free(fb.p);
        arena_reset(&arena);
    }
    free(big);

    /* A file over the writer limit stops at the limit too. */
    struct t_buf fb = {0};
    t_puts(&fb, "--" BND "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n");
    t_put(&fb, proj, 50000);
    rd = (struct t_reader){.data = fb.p, .len = fb.len, .step = 100000};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, 40000, &form, &err);
    is_int(rc, UP_ERR_TOO_LARGE, "file over max_bytes: UP_ERR_TOO_LARGE");
    is_int(t_count_dir(bs.tmp_dir), 0, "file over max_bytes: tmp/ empty");
    free(fb.p);

    /* A NUL inside a text field is kept, len says so. */
    struct t_buf nb = {0};
    t_puts(&nb, "--" BND "\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n");
    t_put(&nb, "a\0b", 3);
    t_puts(&nb, "\r\n--" BND "--");
    rd = (struct t_reader){.data = nb.p, .len = nb.len};
    rc = upload_parse(&arena, &bs, CT, t_read, &rd, 0, &form, &err);
    ok(rc == UP_OK && form.nfields == 1 && form.fields[0].len == 3 &&
           memcmp(form.fields[0].value, "a\0b", 4) == 0,
       "NUL in a field: len 3, NUL-terminated copy");
    form_cleanup(&form);
    free(nb.p);

    free(bad.p);
    free(body.p);
    free(proj);
    arena_free(&arena);
    blob_store_close(&bs);
    t_rm_rf(dir);
}

/* ---- part_data runs (bench: one write(2) per CR made uploads slow) ---- */

static size_t t_runs;
static int t_count_begin(void *ctx, const struct mp_part_info *info)
{
    (void)ctx;
    (void)info;
    return 0;
}
static int t_count_data(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    t_runs++;
    return 0;
}

static void test_data_runs(void)
{
    static const struct mp_callbacks cb = {t_count_begin, t_count_data, NULL};
    static const char head[] =
        "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n";
    static const char tail[] = "\r\n--b--\r\n";
    char body[sizeof head - 1 + 4096 + sizeof tail - 1];
    size_t n = 0;
    memcpy(body, head, sizeof head - 1);
    n += sizeof head - 1;
    for (int i = 0; i < 4096; i++) /* a CR, or CRLF and a dash, every few bytes */
        body[n++] = i % 7 == 0 ? '\r' : i % 7 == 1 ? '\n' : i % 7 == 2 ? '-' : (char)('a' + i % 26);
    memcpy(body + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;

    struct mp_parser *p = mp_new("b", &cb, NULL);
    t_runs = 0;
    int rc = mp_feed(p, body, n);
    if (rc == MP_OK)
        rc = mp_finish(p);
    is_int(rc, MP_OK, "a body with 586 near-delimiters parses");
    is_int((int)t_runs, 1, "in one piece it is delivered in one part_data call");
    mp_free(p);

    /* Cut inside a near-delimiter: the held-back bytes go out once more. */
    size_t cut = sizeof head - 1 + 7 * 100 + 2; /* after "\r\n" of a "\r\n-" */
    p = mp_new("b", &cb, NULL);
    t_runs = 0;
    rc = mp_feed(p, body, cut);
    if (rc == MP_OK)
        rc = mp_feed(p, body + cut, n - cut);
    if (rc == MP_OK)
        rc = mp_finish(p);
    is_int(rc, MP_OK, "the same body cut inside a near-delimiter parses");
    is_int((int)t_runs, 3, "in two pieces: a run, the re-sent partial match, a run");
    mp_free(p);
}

int main(void)
{
    test_normal();
    test_line_endings();
    test_disposition();
    test_truncated_and_garbage();
    test_limits();
    test_bodies();
    test_boundary();
    test_upload();
    test_data_runs();
    return tap_done();
}
