/*
 * unit_util.c — hand-made fast paths that must give exactly what the library
 * calls they replace gave: the database timestamp conversions of util.c
 * (against strptime/timegm and gmtime/strftime, on a sweep of instants and on
 * odd inputs) and response.c's printing of JSON integers (against cJSON's).
 */
#include "../src/response.c"
#include "../src/util.c"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))

/* The conversions as they were before the fast path: the reference. */
static void ref_from_epoch_us(int64_t epoch_us, char *out)
{
    time_t secs = (time_t)(epoch_us / 1000000);
    long frac = (long)(epoch_us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, DB_TS_LEN, "%.19s.%06ld", base, frac);
}

static bool ref_parse(const char *s, int64_t *epoch_us)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p || (*p != ' ' && *p != 'T'))
        return false;
    p = strptime(p + 1, "%H:%M:%S", &tm);
    if (!p)
        return false;
    long frac;
    if (!ts_tail(p, &frac))
        return false;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1)
        return false;
    *epoch_us = (int64_t)secs * 1000000 + frac;
    return true;
}

static void test_sweep(void)
{
    /* Instants from 1000-01-01 to 9999-12-31, denser around today. */
    const int64_t lo = INT64_C(-30610224000), hi = INT64_C(253402300799);
    srand(42);
    int bad_fmt = 0, bad_parse = 0, bad_iso = 0, n = 0;
    for (int i = 0; i < 200000; i++) {
        int64_t secs;
        if (i % 2)
            secs =
                lo + (int64_t)(((uint64_t)rand() << 31 ^ (uint64_t)rand()) % (uint64_t)(hi - lo));
        else
            secs = INT64_C(1500000000) + rand() % 400000000;
        int64_t us = secs * 1000000 + rand() % 1000000;
        char got[DB_TS_LEN], want[DB_TS_LEN];
        db_ts_from_epoch_us(us, got);
        ref_from_epoch_us(us, want);
        if (strcmp(got, want) != 0 && bad_fmt++ < 3)
            diag("format %lld: got %s, want %s", (long long)us, got, want);
        int64_t back = 0;
        if ((!db_ts_parse(got, &back) || back != us) && bad_parse++ < 3)
            diag("parse %s: got %lld, want %lld", got, (long long)back, (long long)us);
        char iso[48];
        db_ts_to_iso(want, iso, sizeof iso);
        want[10] = 'T';
        if ((strncmp(iso, want, strlen(want)) != 0 || strcmp(iso + strlen(want), "+00:00") != 0) &&
            bad_iso++ < 3)
            diag("iso %s: got %s", want, iso);
        n++;
    }
    is_int(bad_fmt, 0, "db_ts_from_epoch_us equals gmtime+strftime on %d instants", n);
    is_int(bad_parse, 0, "db_ts_parse reads them back exactly");
    is_int(bad_iso, 0, "db_ts_to_iso gives 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00'");
}

static void test_inputs(void)
{
    /* Each parsed by both; the results must agree (value, or refusal). */
    static const char *const inputs[] = {
        "2024-02-29 12:34:56.789012",
        "2024-02-29T12:34:56",
        "2023-02-29 00:00:00",
        "2023-02-31 23:59:59.5",
        "2024-12-31 23:59:60",
        "2024-12-31 23:59:61.000001",
        "1970-01-01 00:00:00",
        "1969-12-31 23:59:58.999999",
        "0000-03-01 00:00:00",
        "1000-01-01 00:00:00.000000",
        "9999-12-31 23:59:59.999999",
        "2024-01-05 10:11:12Z",
        "2024-01-05 10:11:12+00:00",
        "2024-01-05 10:11:12.1234567891",
        "2024-01-05 10:11:12.",
        "2024-01-05 10:11:12+01:00",
        "2024-01-05 10:11:12 ",
        "2024-01-05 10:11:123",
        "2024-13-05 10:11:12",
        "2024-00-05 10:11:12",
        "2024-01-00 10:11:12",
        "2024-01-32 10:11:12",
        "2024-01-05 24:00:00",
        "2024-01-05 10:60:00",
        "2024-01-05 10:11:62",
        "2024-1-5 1:2:3",
        "24-01-05 10:11:12",
        "2024/01/05 10:11:12",
        "2024-01-05",
        "2024-01-05 10:11",
        "",
        "garbage",
        "+2024-01-05 10:11:12",
        " 2024-01-05 10:11:12",
        "2024-01-05x10:11:12",
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        int64_t a = -1, b = -1;
        bool ga = db_ts_parse(inputs[i], &a), gb = ref_parse(inputs[i], &b);
        if (ga != gb || (ga && a != b)) {
            bad++;
            diag("'%s': got %d/%lld, reference %d/%lld", inputs[i], ga, (long long)a, gb,
                 (long long)b);
        }
    }
    is_int(bad, 0, "db_ts_parse agrees with strptime+timegm on %zu odd inputs",
           sizeof inputs / sizeof inputs[0]);
    int64_t us = 0;
    ok(!db_ts_parse(NULL, &us), "NULL is refused");
    /* timegm's -1 is also its error value, so the old code refused this one second. */
    ok(db_ts_parse("1969-12-31 23:59:59.25", &us) && us == -750000,
       "the second before the epoch is a time like any other");

    char out[DB_TS_LEN];
    db_ts_from_epoch_us(INT64_C(-62135596800) * 1000000, out); /* 0001-01-01: strftime's own */
    char want[DB_TS_LEN];
    ref_from_epoch_us(INT64_C(-62135596800) * 1000000, want);
    is_str(out, want, "a year before 1000 is formatted as strftime does");
    char iso[8];
    db_ts_to_iso("2024-01-05 10:11:12.5", iso, sizeof iso);
    is_str(iso, "2024-01", "db_ts_to_iso truncates to a small buffer");
    db_ts_to_iso("not a time", iso, sizeof iso);
    is_str(iso, "", "db_ts_to_iso of garbage is empty");
}

static void test_json_integers(void)
{
    static const double values[] = {0,
                                    1,
                                    -1,
                                    7,
                                    42,
                                    -42,
                                    1e3,
                                    123456789,
                                    -1e9,
                                    2e9,
                                    -3e9,
                                    1e14,
                                    99999999999999.0,
                                    999999999999999.0,
                                    -999999999999999.0,
                                    1e15,
                                    -1e15,
                                    1e16,
                                    0.5,
                                    -0.25,
                                    1e-7,
                                    3.14159,
                                    2147483647.0,
                                    2147483648.0,
                                    -2147483649.0,
                                    9007199254740993.0,
                                    -0.0};
    int bad = 0;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        cJSON *a = cJSON_CreateObject(), *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "n", values[i]);
        cJSON *arr = cJSON_AddArrayToObject(a, "list");
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(values[i]));
        cJSON_AddNumberToObject(b, "n", values[i]);
        arr = cJSON_AddArrayToObject(b, "list");
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(values[i]));
        json_integers_raw(a);
        char *got = cJSON_PrintUnformatted(a), *want = cJSON_PrintUnformatted(b);
        if (!got || !want || strcmp(got, want) != 0) {
            bad++;
            diag("%.17g: got %s, cJSON prints %s", values[i], got ? got : "(null)",
                 want ? want : "(null)");
        }
        cJSON_free(got);
        cJSON_free(want);
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
    is_int(bad, 0, "integers written as raw JSON print exactly as cJSON prints them (%zu values)",
           sizeof values / sizeof values[0]);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObjectCS(o, "const_key", cJSON_CreateNumber(5));
    json_integers_raw(o);
    char *text = cJSON_PrintUnformatted(o);
    is_str(text, "{\"const_key\":5}", "a constant key stays (and is not freed)");
    cJSON_free(text);
    cJSON_Delete(o);
}

int main(void)
{
    setenv("TZ", "Europe/Berlin", 1); /* the conversions are UTC whatever the zone */
    tzset();
    test_sweep();
    test_inputs();
    test_json_integers();

    char now[48];
    iso8601_now(now, sizeof now);
    int64_t us = 0;
    ok(strlen(now) == 32 && now[10] == 'T' && strcmp(now + 26, "+00:00") == 0 &&
           db_ts_parse(now, &us) && llabs(us / 1000000 - (int64_t)time(NULL)) <= 5,
       "iso8601_now: 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00', now (%s)", now);
    return tap_done();
}
